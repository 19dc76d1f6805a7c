# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image Factory schematics: their ID computed offline, and the installer image they name.

The factory identifies a schematic by the SHA-256 of its canonical YAML form: the document
decoded into its Go struct and encoded again by go-yaml (4-space indent, fields in struct
order, empty fields omitted, strings quoted only where YAML would read them as something
else). ``canonical_yaml`` writes that form for the fields this collection renders (kernel
args, official extensions, SecureBoot certificates); anything else is refused rather than
hashed wrongly. testbed/imagefactory runs the factory's own package as the oracle the tests
compare with.
"""

from __future__ import annotations

import hashlib
import re

FLAVOURS = {False: "metal-installer", True: "metal-installer-secureboot"}
EMPTY_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

# huge pages and the validator's CPU tuning: a control plane booting them loses its memory to
# huge pages or its power management to the validator's c-state limits
VALIDATOR_ONLY_ARGS = ("hugepages", "hugepagesz", "default_hugepagesz", "processor.max_cstate",
                       "intel_idle.max_cstate", "isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity")

_IMAGE = re.compile(r"^(?P<registry>[^/]+(?:/[^/]+)*?)/(?P<flavour>metal-installer(?:-secureboot)?)/"
                    r"(?P<id>[0-9a-f]{64}):(?P<tag>[^/:]+)$")
_FILE_ID_PREFIX = "# schematic ID "
_FILE_ID = re.compile("^" + _FILE_ID_PREFIX + r"([0-9a-f]{64})$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^#.*\n", re.MULTILINE)
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
# go-yaml (resolve.go) tries strings starting like this as numbers and dates with Go's own
# parsers; kernel args and extension names never do, so they are refused rather than guessed
_NUMERIC_START = re.compile(r"^(?:[0-9.+]|-[0-9._])")
# what go-yaml reads as something other than a string when written plain (resolve.go's map and
# encode.go's isOldBool)
_OLD_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
              "on", "On", "ON", "off", "Off", "OFF"}
_NON_STRINGS = {"true", "True", "TRUE", "false", "False", "FALSE", "~", "null", "Null", "NULL", "<<"}
_INDICATORS = "#,[]{}&*!|>'\"%@`"


class SchematicError(ValueError):
    """A schematic this collection cannot render or hash."""


def build(kernel_args=(), extensions=(), include_well_known_certificates=False):
    """The schematic document for these kernel args and official extensions."""
    for field, values in (("kernel args", kernel_args), ("extensions", extensions)):
        if not isinstance(values, (list, tuple)):
            raise SchematicError(f"{field} must be a list, not {values!r}")
    customization = {}
    if kernel_args:
        customization["extraKernelArgs"] = list(kernel_args)
    if extensions:
        customization["systemExtensions"] = {"officialExtensions": list(extensions)}
    if include_well_known_certificates:
        customization["secureboot"] = {"includeWellKnownCertificates": True}
    return {"customization": customization}


def canonical_yaml(schematic):
    """The factory's canonical text of ``schematic`` (a dict as ``build`` returns or as parsed
    from a schematic file)."""
    schematic = dict(schematic or {})
    unknown = set(schematic) - {"customization"}
    if unknown:
        raise SchematicError(f"schematic fields {sorted(unknown)} are not supported (overlays are for "
                             "single-board computers); use customization only")
    customization = dict(schematic.get("customization") or {})
    unknown = set(customization) - {"extraKernelArgs", "systemExtensions", "secureboot"}
    if unknown:
        raise SchematicError(f"customization fields {sorted(unknown)} are not supported; use extraKernelArgs, "
                             "systemExtensions.officialExtensions and secureboot.includeWellKnownCertificates")
    lines = []
    args = _strings(customization.get("extraKernelArgs"), "extraKernelArgs")
    if args:
        lines += ["    extraKernelArgs:"] + [f"        - {_scalar(arg)}" for arg in args]
    extensions = dict(customization.get("systemExtensions") or {})
    if set(extensions) - {"officialExtensions"}:
        raise SchematicError("systemExtensions: only officialExtensions is supported")
    official = _strings(extensions.get("officialExtensions"), "officialExtensions")
    if official:
        lines += ["    systemExtensions:", "        officialExtensions:"]
        lines += [f"            - {_scalar(name)}" for name in official]
    secureboot = dict(customization.get("secureboot") or {})
    if set(secureboot) - {"includeWellKnownCertificates"}:
        raise SchematicError("secureboot: only includeWellKnownCertificates is supported")
    if secureboot.get("includeWellKnownCertificates"):
        lines += ["    secureboot:", "        includeWellKnownCertificates: true"]
    if not lines:
        return "customization: {}\n"
    return "\n".join(["customization:", *lines]) + "\n"


def schematic_id(schematic):
    """The Image Factory schematic ID: SHA-256 of the canonical form."""
    return hashlib.sha256(canonical_yaml(schematic).encode()).hexdigest()


def installer_image(factory, identifier, talos_version, secureboot=False):
    """``<factory>/<metal-installer[-secureboot]>/<id>:<talos version>``."""
    return f"{factory.rstrip('/')}/{FLAVOURS[bool(secureboot)]}/{identifier}:{talos_version}"


def installer(kernel_args, extensions, factory, talos_version, secureboot=False):
    """The installer a node with these schematic inputs boots: {schematic, id, image}."""
    document = build(kernel_args, extensions)
    identifier = schematic_id(document)
    return {"schematic": document, "id": identifier,
            "image": installer_image(factory, identifier, talos_version, secureboot)}


def file_text(installer_, node):
    """The schematic file written beside a node's config, for upload to the Image Factory: a header
    naming the node, the schematic ID and the installer, then the canonical text the ID is computed
    over."""
    return (f"# Image Factory schematic of {node}, rendered by solanaops.talos.\n"
            f"{_FILE_ID_PREFIX}{installer_['id']}\n"
            f"# installer    {installer_['image']}\n"
            + canonical_yaml(installer_["schematic"]))


def file_id(text):
    """The schematic ID a schematic file's header names, None when it names none."""
    match = _FILE_ID.search(text or "")
    return match.group(1) if match else None


def file_body(text):
    """A schematic file as the Image Factory is sent it: the canonical text, without the comment
    header (the factory ignores comments; the body is the text the ID is computed over)."""
    return _COMMENT_LINE.sub("", text)


def parse_installer_image(image):
    """{registry, flavour, id, tag, secureboot} of an Image Factory installer reference (also
    on a mirror that keeps the factory's paths), or None for any other image."""
    match = _IMAGE.match(str(image or ""))
    if not match:
        return None
    parsed = match.groupdict()
    parsed["secureboot"] = parsed["flavour"].endswith("-secureboot")
    return parsed


def validator_only_args(kernel_args):
    """The args among ``kernel_args`` that belong on a tuned validator only."""
    return [arg for arg in kernel_args or [] if str(arg).split("=", 1)[0] in VALIDATOR_ONLY_ARGS]


def _strings(values, field):
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise SchematicError(f"{field} must be a list of strings, not {values!r}")
    for value in values:
        if not isinstance(value, str) or not _PRINTABLE.match(value):
            raise SchematicError(f"{field}: {value!r} must be a non-empty string of printable ASCII "
                                 "without spaces (the kernel command line splits on them)")
        if _NUMERIC_START.match(value):
            raise SchematicError(f"{field}: {value!r} starts like a number; write a kernel arg as name or "
                                 "name=value, an extension as siderolabs/<name>")
    return list(values)


def _scalar(text):
    """go-yaml's choice for a string in block context: plain when it reads back as the same
    string, double-quoted when plain would read as another type, single-quoted when plain
    would start with an indicator."""
    if text in _NON_STRINGS or text in _OLD_BOOLS:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    starts_indicator = (text[0] in _INDICATORS or text.startswith(("---", "..."))
                        or (text[0] in "?:-" and len(text) == 1))
    # ':' before a blank or the end would start a mapping value
    if starts_indicator or ": " in text or text.endswith(":") or " #" in text:
        return "'" + text.replace("'", "''") + "'"
    return text
