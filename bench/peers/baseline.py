"""Nothing applied: the baseline, and the noise control (baseline against baseline)."""


class Baseline(object):
    def __init__(self, workload):
        self.workload = workload

    def start(self):
        pass

    def stop(self):
        return {}
