"""Dev tools (not shipped): convert a UI-format workflow to the API prompt format using a live
server's /object_info, queue it, wait for it, and list its output files. Used by the README's
main command (scripts/run_lab.sh) and the server tests."""
import json
import time
import urllib.request
import uuid

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SKIP_TYPES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}


def http_json(url, payload=None, timeout=30):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def is_widget(spec):
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def combo_options(spec):
    """Options of a dropdown input in either object_info style (V1: [list, opts]; V3: ["COMBO", {"options"}])."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1:
        return spec[1].get("options", [])
    return None


def has_control(name, spec):
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return opts.get("control_after_generate", False) or name in ("seed", "noise_seed")


def ordered_inputs(info):
    order = info.get("input_order")
    out = []
    for group in ("required", "optional"):
        specs = info["input"].get(group, {})
        names = order.get(group, list(specs)) if order else list(specs)
        out += [(n, specs[n]) for n in names if n in specs]
    return out


def ui_to_api(workflow, object_info):
    """API prompt dict from a UI workflow. Raises ValueError naming the node for unknown types."""
    links = {ln[0]: ln for ln in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        t = node["type"]
        if t in SKIP_TYPES or node.get("mode", 0) in (2, 4):
            continue
        if t not in object_info:
            raise ValueError(f"node {node['id']} has type {t!r}, which this ComfyUI does not know (missing pack?)")
        inputs = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                ln = links[inp["link"]]
                inputs[inp["name"]] = [str(ln[1]), ln[2]]
        values = list(node.get("widgets_values", []))
        for name, spec in ordered_inputs(object_info[t]):
            if not is_widget(spec):
                continue
            if not values:
                break
            v = values.pop(0)
            if has_control(name, spec) and values and values[0] in ("fixed", "increment", "decrement", "randomize"):
                values.pop(0)
            inputs.setdefault(name, v)
        prompt[str(node["id"])] = {"class_type": t, "inputs": inputs}
    return prompt


def queue(base_url, prompt):
    res = http_json(base_url + "/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
    return res["prompt_id"]


def wait(base_url, prompt_id, timeout=600):
    """The /history entry once the prompt finished; raises RuntimeError with ComfyUI's message on error."""
    end = time.time() + timeout
    while time.time() < end:
        hist = http_json(f"{base_url}/history/{prompt_id}")
        if prompt_id in hist:
            entry = hist[prompt_id]
            status = entry.get("status", {})
            if status.get("status_str") == "error":
                raise RuntimeError(f"prompt failed: {json.dumps(status.get('messages', []))[:2000]}")
            if status.get("completed", True):
                return entry
        time.sleep(0.3)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")


def output_files(entry):
    """(type, subfolder, filename) for every file a finished prompt wrote."""
    files = []
    for out in entry.get("outputs", {}).values():
        for key in ("images", "gifs", "files"):
            for f in out.get(key, []):
                files.append((f.get("type", "output"), f.get("subfolder", ""), f["filename"]))
    return files
