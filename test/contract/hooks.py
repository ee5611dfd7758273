"""Schemathesis hooks for the contract fuzz (test/contract/fuzz.ts loads them with SCHEMATHESIS_HOOKS).

Three things, each because openapi.yaml alone cannot say it:

1. Images that reach the decoder. `format: binary` parts get real PNGs of random sizes and pixels (so the
   detector, the box crop and the classifier run), truncated PNGs (the decoder's error path), schemathesis' own
   one-pixel JPEG/PNG/GIF/WebP samples, and arbitrary bytes (the sniffer's 415).
2. The served model's classes. The contract says a label "must be one of the model's classes" (GET /v1/models);
   which classes is a property of the deployed bundle, so the fuzz pins them as an enum for the bundle it serves
   (ASM_FER_FUZZ_CLASSES). Positive cases then send real labels and reach the auditor and the audit trail; negative
   cases send anything else and must get 400. The classes of a Label Studio project's label map are pinned the same
   way (a class that is not the bundle's is 422 `label-map`).
3. EXCLUSIONS below: the answers that are right although a check calls them failures, each with its reason.
   Nothing else is dropped; every dropped failure is counted in the run's summary ("dropped by filter_failure").
"""

from __future__ import annotations

import json
import os
import random
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.file_samples import FILE_SAMPLES

# ---- 1. images --------------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, colour: bool, seed: int) -> bytes:
    """A valid 8-bit grey or RGB PNG of random pixels (random.Random(seed): the fuzz stays reproducible)."""
    rng = random.Random(seed)
    channels = 3 if colour else 1
    rows = b"".join(b"\x00" + rng.randbytes(width * channels) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 1)) + _chunk(b"IEND", b"")


_pngs = st.builds(png, st.integers(1, 320), st.integers(1, 320), st.booleans(), st.integers(0, 2**16))
images = st.one_of(
    _pngs,
    _pngs.flatmap(lambda b: st.integers(8, max(8, len(b) - 1)).map(lambda n: b[:n])),  # truncated: 422
    st.sampled_from(list(FILE_SAMPLES.values())),  # schemathesis' smallest JPEG/PNG/GIF/WebP (and PDF/ZIP: 415)
    st.binary(max_size=256),  # not an image: 415
)
schemathesis.openapi.format("binary", images)

# ---- 2. the served model's classes ------------------------------------------------------------------------------

CLASSES: list[str] = json.loads(os.environ.get("ASM_FER_FUZZ_CLASSES", "[]"))


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    if not CLASSES:
        return
    label = raw_schema["components"]["schemas"]["AuditRequest"]["properties"]["label"]
    one, many = label["oneOf"]
    one["enum"] = CLASSES
    many["items"]["enum"] = CLASSES
    raw_schema["components"]["schemas"]["LabelStudioLabelMapRequest"]["additionalProperties"]["enum"] = CLASSES


# ---- 3. exclusions ----------------------------------------------------------------------------------------------

MULTIPART = {"POST /v1/predict", "POST /v1/audit"}


@dataclass(frozen=True)
class Exclusion:
    """Drop a failure with `code` on one of `operations` when the answer is `status` with a problem `type` ending in
    `problem` and a `detail` matching `detail` (None: any)."""

    code: str
    operations: frozenset[str]
    status: int
    problem: str
    detail: str | None
    reason: str

    def matches(self, code: str, operation: str, status: int, body: Any) -> bool:
        if code != self.code or operation not in self.operations or status != self.status or not isinstance(body, dict):
            return False
        if not str(body.get("type", "")).endswith(self.problem):
            return False
        return self.detail is None or re.search(self.detail, str(body.get("detail", ""))) is not None


LABEL_STUDIO = ["GET /label-studio/health", "POST /label-studio/setup", "POST /label-studio/predict", "POST /label-studio/webhook",
                "GET /label-studio/projects/{project}/label-map", "PUT /label-studio/projects/{project}/label-map",
                "DELETE /label-studio/projects/{project}/label-map"]
ACCEPTED = "ST202"  # positive_data_acceptance: a schema-valid request was refused
MISSING_HEADER = "ST203"  # missing_required_header: no Authorization, and the answer was not 401

EXCLUSIONS = [
    Exclusion(ACCEPTED, frozenset(MULTIPART), 415, "unsupported-media-type", None,
              "a binary part's bytes are not constrained by any schema; bytes that are no JPEG/PNG/WebP/GIF/TIFF/AVIF "
              "are 415 by the contract"),
    Exclusion(ACCEPTED, frozenset(MULTIPART), 422, "unreadable-image", None,
              "bytes that start like an image but do not decode (the truncated PNGs above) are 422 by the contract"),
    Exclusion(ACCEPTED, frozenset(MULTIPART), 422, "box-outside-image", None,
              "whether a box lies inside its image depends on the image's size, which no schema of the box part can see"),
    Exclusion(ACCEPTED, frozenset(MULTIPART), 422, "no-face", None,
              "whether the detector finds a face in random pixels is up to the pixels; a label for no face is 422"),
    Exclusion(ACCEPTED, frozenset(MULTIPART), 422, "several-faces", None,
              "likewise: several faces and no `face` part is 422"),
    Exclusion(ACCEPTED, frozenset(MULTIPART), 400, "bad-request", r"got \d+ image part\(s\) and \d+ \w+ part\(s\)",
              "the counts of image, label, box, face and id parts must agree: a rule across parts, which JSON Schema "
              "cannot state for multipart bodies"),
    Exclusion(ACCEPTED, frozenset({"GET /v1/audits", "GET /v1/audits/summary"}), 400, "bad-request",
              r"is not before to",
              "`to` must be later than `from`: a rule across two query parameters, which JSON Schema cannot state"),
    Exclusion(ACCEPTED, frozenset({"GET /v1/audits"}), 400, "bad-request", r"cursor is not one this service returned",
              "a cursor is opaque: only a nextCursor this service returned is one (the stateful phase follows it "
              "through the NextPage link); any other string is 400"),
    Exclusion(ACCEPTED, frozenset({"POST /v2/models/{name}/infer"}), 400, "bad-request", None,
              "a tensor is valid only when its name, datatype, shape and data length agree with the served bundle's "
              "input (GET /v2/models/{name}): per-bundle, cross-field rules; test/http/v2.test.ts covers valid tensors"),
    Exclusion(ACCEPTED, frozenset({"POST /label-studio/setup", "POST /label-studio/predict"}), 422, "label-config", None,
              "a labeling config is Label Studio XML: whether it holds one single-choice image question whose choices "
              "are the bundle's classes is no JSON Schema's to state (test/label-studio/ covers valid configs)"),
    Exclusion(ACCEPTED, frozenset({"POST /label-studio/webhook"}), 400, "bad-request", r"needs id, task, project|has no id",
              "an annotation action must carry the annotation as Label Studio sends it; the schema leaves the body open "
              "for the many actions asm-fer ignores, so this rule across `action` and `annotation` is the service's"),
    Exclusion(ACCEPTED, frozenset(LABEL_STUDIO), 403, "forbidden", r"Label Studio backend is off",
              "without the Label Studio settings the backend's routes are off for everyone (403); the keyed run turns "
              "them on"),
    Exclusion(MISSING_HEADER, frozenset(LABEL_STUDIO), 403, "forbidden", r"Label Studio backend is off",
              "likewise: no credential a 401 could ask for while the backend is off (the keyed run checks the 401)"),
    Exclusion(MISSING_HEADER, frozenset({"POST /v1/models/reload"}), 403, "forbidden", r"disabled",
              "without ASM_FER_API_KEY, reload over HTTP is disabled for everyone (403): there is no credential a 401 "
              "could ask for (the keyed run checks the 401)"),
]


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    try:
        body = response.json()
    except Exception:
        body = None
    return not any(e.matches(failure.code, operation, response.status_code, body) for e in EXCLUSIONS)
