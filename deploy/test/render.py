"""Render a kustomization the way `kustomize build` does, for the subset deploy/k8s uses.

CI machines have no kustomize binary, so the manifests are rendered here and then validated
against the Kubernetes schemas. Supported: `resources` (files and directories),
`configMapGenerator` (files and literals; behavior create/replace/merge, with kustomize's
content-hash name suffix), `namespace`, `images`, and strategic-merge `patches` given by path.
Anything else in a kustomization is an error, so a new feature cannot be silently ignored.
Where `kubectl kustomize` exists the tests compare both renderings.

Usage: python render.py DIR  (prints the multi-document YAML)
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import yaml

SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "namespace",
    "images",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# patchMergeKey of the list fields deploy/k8s patches; other lists are replaced whole, as
# strategic merge does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "env": "name",
    "ports": "containerPort",
}


class RenderError(Exception):
    """A kustomization this renderer cannot render faithfully."""


def render(directory: Path) -> list[dict]:
    """All objects of the kustomization in `directory`, fully transformed."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{kfile}: unsupported keys {sorted(unknown)}")

    objects: list[dict] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects.extend(render(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)

    for generator in spec.get("configMapGenerator", []):
        _apply_generator(objects, directory, generator)
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path:` is supported, got {patch}")
        _apply_patch(objects, yaml.safe_load((directory / patch["path"]).read_text()))
    for image in spec.get("images", []):
        _apply_image(objects, image)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _apply_generator(objects: list[dict], directory: Path, generator: dict) -> None:
    name = generator["name"]
    data = {}
    for f in generator.get("files", []):
        data[Path(f).name] = (directory / f).read_text()
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    behavior = generator.get("behavior", "create")
    existing = [o for o in objects if o["kind"] == "ConfigMap" and o.get("_generated") == name]
    if behavior == "create":
        if existing:
            raise RenderError(f"configMapGenerator {name}: already exists, use behavior")
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                        "data": data, "_generated": name})
    elif behavior in ("replace", "merge"):
        if not existing:
            raise RenderError(f"configMapGenerator {name}: behavior {behavior} without a base")
        target = existing[0]
        target["data"] = data if behavior == "replace" else {**target["data"], **data}
    else:
        raise RenderError(f"configMapGenerator {name}: unknown behavior {behavior}")
    _finalize_generated(objects)


def _finalize_generated(objects: list[dict]) -> None:
    """Give generated ConfigMaps their hashed names and point references at them."""
    renames = {}
    for obj in objects:
        base = obj.get("_generated")
        if base:
            hashed = f"{base}-{config_map_hash(obj['data'])}"
            # References may still carry the plain name or an earlier hash (overlay replace).
            renames[base] = renames[obj["metadata"]["name"]] = hashed
            obj["metadata"]["name"] = hashed
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            pod = obj["spec"]["template"]["spec"]
            for volume in pod.get("volumes", []):
                cm = volume.get("configMap")
                if cm and cm["name"] in renames:
                    cm["name"] = renames[cm["name"]]
            for container in pod.get("containers", []):
                for source in container.get("envFrom", []):
                    ref = source.get("configMapRef")
                    if ref and ref["name"] in renames:
                        ref["name"] = renames[ref["name"]]


def config_map_hash(data: dict) -> str:
    """kustomize's name suffix: sha256 of the Go JSON encoding, 10 chars, vowel-free.

    kustomize 5 hashes the generated object before it is named, so the name is empty.
    """
    encoded = json.dumps({"data": data, "kind": "ConfigMap", "name": ""},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's encoding/json escapes these three for HTML safety; the hash must see the same bytes.
    encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _apply_patch(objects: list[dict], patch: dict) -> None:
    kind, name = patch["kind"], patch["metadata"]["name"]
    targets = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(targets) != 1:
        raise RenderError(f"patch for {kind}/{name} matches {len(targets)} objects")
    merged = strategic_merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base, patch):
    """Strategic merge of `patch` into `base` (maps merge, keyed lists merge, others replace)."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if key in MERGE_KEYS and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(out[key], value, MERGE_KEYS[key])
        elif key in out:
            out[key] = strategic_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(base: list, patch: list, merge_key: str) -> list:
    out = copy.deepcopy(base)
    for item in patch:
        match = [i for i, b in enumerate(out) if b.get(merge_key) == item.get(merge_key)]
        if match:
            out[match[0]] = strategic_merge(out[match[0]], item)
        else:
            out.append(copy.deepcopy(item))
    return out


def _apply_image(objects: list[dict], image: dict) -> None:
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            ref = container["image"]
            repo = ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref
            if repo == image["name"]:
                tag = image.get("newTag")
                container["image"] = image.get("newName", repo) + (f":{tag}" if tag else "")


def to_yaml(objects: list[dict]) -> str:
    """Multi-document YAML without the renderer's bookkeeping keys."""
    clean = [{k: v for k, v in o.items() if not k.startswith("_")} for o in objects]
    return yaml.safe_dump_all(clean, sort_keys=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    try:
        print(to_yaml(render(Path(argv[1]))), end="")
    except (RenderError, OSError, KeyError, yaml.YAMLError) as err:
        print(f"render.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
