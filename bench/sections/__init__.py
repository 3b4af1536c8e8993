"""The benchmark sections, in run order; each module has ``run(ctx, out)``."""

from bench.sections import cold_sync, memory, plan_scale, refresh, serving, serving_scaleout, store_du

ALL = {
    "cold_sync": cold_sync.run,
    "refresh": refresh.run,
    "plan_scale": plan_scale.run,
    "serving": serving.run,
    "memory": memory.run,
    "serving_scaleout": serving_scaleout.run,
    "store_du": store_du.run,
}
