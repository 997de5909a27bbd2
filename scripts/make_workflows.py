"""Dev tool (not shipped): writes the UI-format example workflows in workflows/ from compact
descriptions, so every file has consistent links, ids and widget values.
Run: .labenv/venv/bin/python scripts/make_workflows.py"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Output sockets (name, type) of the node types the workflows use.
OUTPUTS = {
    "SamplerLabModel": [("MODEL", "MODEL")],
    "SamplerLabConditioning": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    "SamplerLabEmptyLatent": [("LATENT", "LATENT")],
    "SamplerLabDecode": [("IMAGE", "IMAGE")],
    "KSampler": [("LATENT", "LATENT")],
    "SaveImage": [],
    "Note": [],
}


class Graph:
    def __init__(self):
        self.nodes, self.links = [], []

    def add(self, type_, widgets, pos, inputs=(), size=(320, 160), title=None):
        nid = len(self.nodes) + 1
        node = {"id": nid, "type": type_, "pos": list(pos), "size": list(size), "flags": {}, "order": nid - 1,
                "mode": 0, "inputs": [], "outputs": [], "properties": {"Node name for S&R": type_},
                "widgets_values": list(widgets)}
        if title:
            node["title"] = title
        for slot, (name, typ) in enumerate(OUTPUTS[type_]):
            node["outputs"].append({"name": name, "type": typ, "links": [], "slot_index": slot})
        for name, typ, (src, src_slot) in inputs:
            lid = len(self.links) + 1
            self.links.append([lid, src["id"], src_slot, nid, len(node["inputs"]), typ])
            src["outputs"][src_slot]["links"].append(lid)
            node["inputs"].append({"name": name, "type": typ, "link": lid})
        self.nodes.append(node)
        return node

    def note(self, text, pos, size=(420, 220)):
        return self.add("Note", [text], pos, size=size)

    def dump(self, path):
        wf = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
              "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}},
              "version": 0.4}
        with open(path, "w") as f:
            json.dump(wf, f, indent=1)
            f.write("\n")


def lab_front(g, parameterization="eps", batch=4, class_id=0):
    model = g.add("SamplerLabModel", [parameterization, 3.0, 6, 3, 0.05, 0, "float32"], (0, 0), size=(320, 230))
    cond = g.add("SamplerLabConditioning", [class_id], (0, 280), size=(320, 90))
    latent = g.add("SamplerLabEmptyLatent", [128, 128, batch, 1], (0, 420), size=(320, 150))
    return model, cond, latent


def ksampler_chain(g, model, cond, latent, sampler, scheduler, steps, cfg, y, prefix):
    ks = g.add("KSampler", [42, "fixed", steps, cfg, sampler, scheduler, 1.0], (380, y),
               inputs=[("model", "MODEL", (model, 0)), ("positive", "CONDITIONING", (cond, 0)),
                       ("negative", "CONDITIONING", (cond, 1)), ("latent_image", "LATENT", (latent, 0))],
               size=(320, 270), title=f"KSampler: {sampler} / {scheduler}, {steps} steps")
    dec = g.add("SamplerLabDecode", [], (740, y), inputs=[("samples", "LATENT", (ks, 0))], size=(220, 60))
    g.add("SaveImage", [prefix], (1000, y), inputs=[("images", "IMAGE", (dec, 0))], size=(300, 300))


def lab_first_run(pack_sampler, pack_scheduler):
    g = Graph()
    model, cond, latent = lab_front(g)
    ksampler_chain(g, model, cond, latent, "euler", "karras", 10, 3.0, 0, "sampler_lab/first_run_core")
    ksampler_chain(g, model, cond, latent, pack_sampler, pack_scheduler, 10, 3.0, 330, "sampler_lab/first_run_pack")
    g.note("Sampler Lab - first run (no checkpoint needed)\n\n"
           "The Lab Model is an exact diffusion model (a Gaussian mixture), so this runs in seconds anywhere.\n"
           "Top: ComfyUI's euler + karras. Bottom: a Sampler Lab sampler and scheduler picked straight from the "
           "stock KSampler dropdowns.\n\nLook at: both rows show the class-0 motif; change class_id, cfg or the "
           "sampler and queue again. Swap the Lab Model for a real checkpoint loader and the same KSampler "
           "settings work unchanged.", (0, 620))
    return g


def main(pack_sampler="euler", pack_scheduler="karras"):
    os.makedirs(os.path.join(ROOT, "workflows"), exist_ok=True)
    lab_first_run(pack_sampler, pack_scheduler).dump(os.path.join(ROOT, "workflows", "lab_first_run.json"))


if __name__ == "__main__":
    import sys
    main(*sys.argv[1:3])
