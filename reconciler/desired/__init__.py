"""Desired state: ``repos.yaml`` loaded, validated and frozen."""
