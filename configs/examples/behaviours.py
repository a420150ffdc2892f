"""Traffic processes for configs/examples/nightly-batch.yaml (``traffic.process``, docs/config.md).

Each function is a SimPy process of one client slot: ``env`` is its ``simpy.Environment`` (``env.now``
in simulated seconds), ``conn`` its connection, ``rng`` its own ``numpy.random.Generator``; the
config's ``traffic.params`` arrive as keyword arguments.
"""


def nightly_batch(env, conn, rng, period_s=400.0, burst=5, think_s=0.5):
    """A batch of ``burst`` requests every ``period_s`` seconds, ``think_s`` (exponential) apart.

    Between batches the connection sits idle. A request that fails (its connection was dropped
    while idle) is sent once more: with a traffic process nothing reopens a dead connection by
    itself, so that retry is what opens a new one.
    """
    while True:
        for _ in range(burst):
            reply = yield conn.request()
            if not reply.ok:
                yield conn.request()
            yield env.timeout(rng.exponential(think_s))
        yield env.timeout(period_s)
