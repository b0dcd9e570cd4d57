"""``colorstyle models`` and ``colorstyle weights``: the architectures and the published weight sets."""

from __future__ import annotations

import argparse
import json

from colorstyle_core import loader, storage
from colorstyle_core.catalog import REGISTRY, get_spec, layout
from colorstyle_core.models.vgg import layer_names


def cmd_models_layout(args: argparse.Namespace) -> int:
    rows = layout(args.name)
    if args.json:
        print("[\n" + ",\n".join("  " + json.dumps([k, s, d]) for k, s, d in rows) + "\n]")
    else:
        for k, s, d in rows:
            print(f"{k:40s} {str(tuple(s)):24s} {d}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    for spec in REGISTRY.values():
        extra = f"  layers: {', '.join(n for n in layer_names(spec.name) if n.startswith('relu'))}" \
            if spec.kind == "vgg" else ""
        print(f"{spec.name:19s} {spec.kind:15s} {spec.reference}{extra}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    cache = loader.default_cache_dir()
    for spec in REGISTRY.values():
        if not spec.url:
            print(f"{spec.name:19s} (trained by colorstyle train; give its URI)\n{'':19s} {spec.reference}")
            continue
        cached = (cache / spec.filename).is_file()
        digest = f"sha256:{spec.sha256[:8]}" if spec.sha256 else "sha256 not recorded (give it with the file)"
        print(f"{spec.name:19s} {spec.filename:38s} {digest}  {'cached' if cached else 'not cached'}"
              f"\n{'':19s} {spec.url}\n{'':19s} licence: {spec.license}")
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    spec = get_spec(args.name)
    if spec.archive_member and not spec.sha256:  # shipped in a zip, its hash not recorded: hash what is fetched
        if args.to.endswith((".pth", ".pt")):
            raise ValueError(f"{spec.name}: --to is the prefix its {loader.SHA256SUMS} goes to, not a file name")
        written, digest = loader.fetch_from_archive(spec, args.to, args.source, args.sha256, storage_options=opts,
                                                    dest_storage_options=opts)
        print(written)
        checked = "matches --sha256" if args.sha256 else (
            "not checked: no published hash is recorded; this is the hash of what was fetched")
        print(f"sha256 {digest}  {spec.filename}  ({checked}; recorded in "
              f"{storage.join(args.to, loader.SHA256SUMS)})")
        return 0
    source = loader.WeightsSource(args.source, args.sha256, opts)
    written = loader.fetch(spec, args.to, source, dest_storage_options=opts)
    print(written)
    return 0


def add_model_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``models`` and ``weights``."""
    models = sub.add_parser("models", help="network architectures").add_subparsers(dest="models_cmd", required=True)
    p = models.add_parser("layout", help="print a checkpoint's state_dict layout")
    p.add_argument("name", choices=[n for n, s in REGISTRY.items() if s.kind != "arbitrary-style"])
    p.add_argument("--json", action="store_true", help="as [[key, [shape...], dtype], ...]")
    p.set_defaults(func=cmd_models_layout)
    p = models.add_parser("list", help="list the architectures")
    p.set_defaults(func=cmd_models_list)

    weights = sub.add_parser("weights", help="published weights: list, stage").add_subparsers(
        dest="weights_cmd", required=True)
    p = weights.add_parser("list", help="list the weight sets, their URLs, hashes and cache state")
    p.set_defaults(func=cmd_weights_list)
    p = weights.add_parser("fetch", help="verify a checkpoint and copy it into a cache dir or bucket",
                           description="Resolve NAME (--from URI, else the cache, else the published URL), "
                           "verify its sha256 and write it to --to (a directory/prefix or a .pth URI). A file "
                           "published inside a zip whose hash is not recorded (deepexemplar_*) is taken from the "
                           "zip (--from ZIP, else the published URL), and the sha256 of what was fetched is "
                           "printed and written to --to's SHA256SUMS.")
    p.add_argument("name", choices=[n for n, s in REGISTRY.items() if s.url])
    p.add_argument("--to", required=True, metavar="URI", help="e.g. ~/.cache/colorstyle or s3://bucket/weights/")
    p.add_argument("--from", dest="source", metavar="URI", help="take the file (or the zip holding it) from here")
    p.add_argument("--sha256", metavar="HEX", help="full sha256 of --from when it is not the published file")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for --from/--to")
    p.set_defaults(func=cmd_weights_fetch)
