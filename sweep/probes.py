"""Counted probe runs of samplers without a spec (equal-cost mode): calls per step and fixed extra
calls, kept in the sweep folder's probes.json so a re-run does not probe again."""
import json
import os


class ProbeStore:
    def __init__(self, cache, name="probes.json"):
        self.cache, self.name = cache, name
        self.data = {}
        path = os.path.join(cache.folder, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    got = json.load(f)
                self.data = got if isinstance(got, dict) else {}
            except (OSError, ValueError):
                self.data = {}

    def __contains__(self, key):
        return key in self.data

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        self.data[key] = value
        self.cache.write_text(self.name, json.dumps(self.data, indent=1))
