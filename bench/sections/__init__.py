"""The benchmark sections, in run order; each module has ``run(ctx, out)``."""

from bench.sections import (
    cold_sync,
    cold_sync_big,
    large_store,
    latency,
    memory,
    plan_scale,
    refresh,
    serving,
    serving_scaleout,
    startup,
    store_du,
)

ALL = {
    "cold_sync": cold_sync.run,
    "refresh": refresh.run,
    "latency": latency.run,
    "cold_sync_big": cold_sync_big.run,
    "plan_scale": plan_scale.run,
    "serving": serving.run,
    "memory": memory.run,
    "serving_scaleout": serving_scaleout.run,
    "store_du": store_du.run,
    "startup": startup.run,
    "large_store": large_store.run,
}
