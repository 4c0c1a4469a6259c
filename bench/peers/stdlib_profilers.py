"""cProfile: what users run to profile a Python program; it always sees everything."""
import cProfile


class CProfile(object):
    def __init__(self, workload):
        self.workload = workload
        self.profile = cProfile.Profile()

    def start(self):
        self.profile.enable()

    def stop(self):
        self.profile.disable()
        self.profile.create_stats()
        stats = self.profile.stats
        calls = sum(entry[1] for entry in stats.values())  # primitive + recursive calls
        return {"functions": len(stats), "calls": calls}
