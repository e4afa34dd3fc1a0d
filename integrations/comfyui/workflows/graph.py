"""The example workflow in ComfyUI's two formats: the API prompt (pixels_exemplar_api.json) is the source, and the
graph the ComfyUI editor loads (pixels_exemplar.json) is made from it with the nodes' own definitions.

`python tests/comfyui_run.py --ui-graph integrations/comfyui/workflows/pixels_exemplar.json` (with COMFYUI_PATH
set) rewrites the graph from the API prompt; tests/test_comfyui.py checks that the shipped graph is the one this
module makes.
"""

from __future__ import annotations

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")

# where each node sits in the editor: (column, row) on a grid of COLUMN x ROW pixels
LAYOUT = {"1": (0, 0), "2": (0, 1), "3": (0, 2), "4": (1, 0), "5": (1, 1), "6": (1, 2), "7": (1, 3), "8": (2, 2),
          "9": (3, 1), "10": (4, 0), "11": (5, 0), "12": (5, 1), "13": (6, 0)}
COLUMN, ROW = 340, 300
NODE_WIDTH, HEADER, LINE = 300, 30, 22


def definitions(mappings: dict, class_types) -> dict:
    """{class_type: {"inputs": [(name, type, widget, control_after_generate)], "outputs": [(name, type)]}} from
    ComfyUI's node classes (V1 and V3 nodes both answer INPUT_TYPES and RETURN_TYPES)."""
    out = {}
    for class_type in sorted(set(class_types)):
        node = mappings[class_type]
        spec = node.INPUT_TYPES()
        inputs = []
        for group in ("required", "optional"):
            for name, entry in spec.get(group, {}).items():
                kind, options = entry[0], (entry[1] if len(entry) > 1 else {}) or {}
                kind = "COMBO" if isinstance(kind, list) else str(kind)
                widget = kind in WIDGET_TYPES and not options.get("forceInput", False)
                inputs.append((name, kind, widget, bool(options.get("control_after_generate", False)),
                               bool(options.get("image_upload", False))))
        names = getattr(node, "RETURN_NAMES", None) or node.RETURN_TYPES
        out[class_type] = {"inputs": inputs, "outputs": [(str(n), str(t)) for n, t in zip(names, node.RETURN_TYPES)]}
    return out


def ui_graph(prompt: dict, defs: dict) -> dict:
    """The editor's graph (litegraph format, version 0.4) for an API-format `prompt`."""
    links, nodes = [], []
    feeds: dict[tuple[str, int], list[int]] = {}
    for target, node in prompt.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                link = len(links) + 1
                source, slot = value
                kind = defs[prompt[source]["class_type"]]["outputs"][slot][1]
                slot_in = [i[0] for i in defs[node["class_type"]]["inputs"] if not i[2]].index(name)
                links.append([link, int(source), slot, int(target), slot_in, kind])
                feeds.setdefault((source, slot), []).append(link)
    by_target = {(str(link[3]), link[4]): link[0] for link in links}
    for order, (node_id, node) in enumerate(sorted(prompt.items(), key=lambda item: int(item[0]))):
        d = defs[node["class_type"]]
        sockets = [i for i in d["inputs"] if not i[2]]
        widgets = []
        for name, kind, widget, control, upload in d["inputs"]:
            if widget:
                widgets.append(node["inputs"][name])
                if control:
                    widgets.append("fixed")
            if upload:
                widgets.append("image")
        column, row = LAYOUT[node_id]
        rows = max(len(sockets), len(d["outputs"])) + len([w for w in d["inputs"] if w[2]])
        nodes.append({
            "id": int(node_id), "type": node["class_type"], "pos": [column * COLUMN, row * ROW],
            "size": [NODE_WIDTH, HEADER + LINE * rows + 20], "flags": {}, "order": order, "mode": 0,
            "title": node.get("_meta", {}).get("title", node["class_type"]),
            "inputs": [{"name": name, "type": kind, "link": by_target.get((node_id, k))}
                       for k, (name, kind, *_rest) in enumerate(sockets)],
            "outputs": [{"name": name, "type": kind, "links": feeds.get((node_id, k), []), "slot_index": k}
                        for k, (name, kind) in enumerate(d["outputs"])],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
        })
    return {"last_node_id": max(int(k) for k in prompt), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}
