"""``reconciler watch``: the reconcile loop (``loop``), its git checkout (``git``), its
metrics (``metrics``) and the wiring that puts plan, apply and both together (``run``)."""
