"""The upstream registry client (Docker Registry HTTP API V2 / OCI distribution pull).

``protocol`` holds what the rest of the code base may depend on (``UpstreamSource``,
``ManifestHead``, ``RequestStats``; a client is made from a ``model.registry.RegistryConfig``);
``client.RegistryClient`` is the real implementation, wired in by ``reconciler.api``. Modules: ``client`` (API calls),
``session`` (pool, TLS, auth on the wire, safe redirects), ``auth`` (challenges,
credentials, token cache), ``transport`` (errors and header parsing), ``retry``.
"""
