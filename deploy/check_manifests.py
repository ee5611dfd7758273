"""Validates deploy/kubernetes offline: every manifest against its JSON schema, then the facts that tie the manifests to
the service (ports, probe paths, environment variables, drain time, user, data folder, replicas vs the audit store).

Core kinds: the Kubernetes schemas kubernetes-validate bundles, strict (unknown fields rejected), at each version in
K8S_VERSIONS. Custom resources (ServiceMonitor, InferenceService): the schemas extracted from their CRDs in
deploy/kubernetes/schemas (source and version in each file's $comment). A kind with no schema is an error, not the
warning kubernetes-validate prints. Each manifest in deploy/tests/broken must be rejected, and so must each mutation in
NEGATIVE: they prove the validator and the checks run. Run by `make test-deploy`; prints "deploy manifests: ok ..." or
every problem and exits 1.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
BROKEN = ROOT / "deploy" / "tests" / "broken"
# An older release clusters still run, and the newest kubernetes-validate 1.37 bundles (it has 1.25 to 1.37).
K8S_VERSIONS = ("1.30", "1.37")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-serving-v1beta1.json",
}
# The corev1 types the KServe CRD inlines are Kubernetes 1.32's (inferenceservice schema's $comment).
CRD_CORE_VERSION = "1.32.0"
# Variables the manifests set that src/config.ts does not read, and who reads them.
READ_ELSEWHERE = {"PROTOCOL": "KServe (custom predictor protocol, pkg/constants CustomSpecProtocolEnvVarKey)"}
MiB = 1024 * 1024

Doc = dict[str, Any]


# --- facts read from the service's own files --------------------------------------------------------------------


def config_variables() -> set[str]:
    """The environment variables src/config.ts reads: the keys of its zod configSchema."""
    text = (ROOT / "src" / "config.ts").read_text()
    body = text.split("export const configSchema = z.object({", 1)[1].split("\n});", 1)[0]
    return set(re.findall(r"^  ([A-Z][A-Z0-9_]*):", body, flags=re.M))


def default_port() -> int:
    m = re.search(r"^\s+PORT: int\(0, 65535\)\.default\((\d+)\)", (ROOT / "src" / "config.ts").read_text(), flags=re.M)
    assert m, "src/config.ts: PORT's default not found"
    return int(m.group(1))


def drain_seconds() -> float:
    """src/main.ts's SHUTDOWN_GRACE_MS: how long in-flight requests get after SIGTERM, in seconds."""
    m = re.search(r"const SHUTDOWN_GRACE_MS = ([\d_]+);", (ROOT / "src" / "main.ts").read_text())
    assert m, "src/main.ts: SHUTDOWN_GRACE_MS not found"
    return int(m.group(1).replace("_", "")) / 1000


def dockerfile_runtime() -> dict[str, Any]:
    """The last stage of the Dockerfile (the default target): its USER uid/gid, WORKDIR and EXPOSEd port."""
    stage = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[-1]
    user = re.findall(r"^USER (\d+):(\d+)$", stage, flags=re.M)
    workdir = re.findall(r"^WORKDIR (\S+)$", stage, flags=re.M)
    expose = re.findall(r"^EXPOSE (\d+)$", stage, flags=re.M)
    assert user and workdir and expose, "Dockerfile: last stage lacks USER uid:gid, WORKDIR or EXPOSE"
    return {"uid": int(user[-1][0]), "gid": int(user[-1][1]), "workdir": workdir[-1], "port": int(expose[-1])}


def openapi_paths() -> set[str]:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return {path for path, ops in spec["paths"].items() if "get" in ops}


# --- schema validation --------------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_validator(file: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((MANIFESTS / "schemas" / file).read_text())
    core = kv.schema_contents(f"kubernetes-json-schema/v{CRD_CORE_VERSION}-local-strict/_definitions.json", CRD_CORE_VERSION)
    registry: Registry = Registry().with_resources(
        [(schema["$id"], Resource.from_contents(schema)), (core["$id"], Resource.from_contents(core))]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(doc: Doc) -> list[str]:
    """Every schema violation of one resource, prefixed with the schema that found it; [] when valid."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        errors = crd_validator(CRD_SCHEMAS[key]).iter_errors(doc)
        return [f"{CRD_SCHEMAS[key]}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    problems = []
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            problems.append(f"Kubernetes {version} (strict): {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            problems.append(e.message)
    return problems


# --- cross-cutting checks ---------------------------------------------------------------------------------------


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(name, pod spec) of the Deployment's template and of the InferenceService's predictor."""
    for d in by_kind(docs, "Deployment"):
        yield f"Deployment/{d['metadata']['name']}", d["spec"]["template"]["spec"]
    for d in by_kind(docs, "InferenceService"):
        yield f"InferenceService/{d['metadata']['name']}", d["spec"]["predictor"]


def settings(docs: list[Doc]) -> dict[str, str]:
    """The ConfigMap's data and the example Secret's keys: the environment every pod gets through envFrom."""
    env: dict[str, str] = {}
    for d in by_kind(docs, "ConfigMap"):
        env.update(d.get("data", {}))
    for d in by_kind(docs, "Secret"):
        env.update(d.get("stringData", {}))
    return env


def probe_port(container: Doc, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == port), None)


def check_env(docs: list[Doc]) -> list[str]:
    """Every variable in the ConfigMap, the Secret and the containers' env is one src/config.ts reads."""
    known = config_variables()
    names = set(settings(docs))
    for _, pod in pod_specs(docs):
        for c in pod["containers"]:
            names |= {e["name"] for e in c.get("env", [])}
    return [f"{n} is set but src/config.ts does not read it" for n in sorted(names - known - set(READ_ELSEWHERE))]


def check_probes_and_ports(docs: list[Doc]) -> list[str]:
    problems = []
    paths, port, image = openapi_paths(), default_port(), dockerfile_runtime()
    if image["port"] != port:
        problems.append(f"Dockerfile EXPOSEs {image['port']}, src/config.ts's PORT defaults to {port}")
    if settings(docs).get("PORT", str(port)) != str(port):
        problems.append(f"ConfigMap PORT={settings(docs)['PORT']}, the image EXPOSEs {port}")
    want = {"readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live", "startupProbe": "/v2/health/live"}
    for name, pod in pod_specs(docs):
        c = pod["containers"][0]
        if [p["containerPort"] for p in c.get("ports", [])] != [port]:
            problems.append(f"{name}: container ports {c.get('ports')} are not [{port}]")
        for probe, path in want.items():
            get = c.get(probe, {}).get("httpGet")
            if not get or get.get("path") != path or path not in paths:
                problems.append(f"{name}: {probe} must GET {path} (a path of openapi.yaml), has {get}")
            elif probe_port(c, get["port"]) != port:
                problems.append(f"{name}: {probe} port {get['port']} is not the service's {port}")
    for sm in by_kind(docs, "ServiceMonitor"):
        for ep in sm["spec"]["endpoints"]:
            if ep.get("path") not in paths:
                problems.append(f"ServiceMonitor: path {ep.get('path')} is not in openapi.yaml")
    return problems


def preStop_seconds(container: Doc) -> float:
    pre = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    cmd = pre.get("exec", {}).get("command", [])
    return float(cmd[1]) if len(cmd) == 2 and cmd[0] == "sleep" else 0.0


def check_termination(docs: list[Doc]) -> list[str]:
    """The kubelet's SIGKILL must come after the preStop sleep, the service's optional serving delay after SIGTERM
    (ASM_FER_SHUTDOWN_DELAY_MS, issue 19, when set) and its own drain (SHUTDOWN_GRACE_MS)."""
    drain, problems = drain_seconds(), []
    delay = int(settings(docs).get("ASM_FER_SHUTDOWN_DELAY_MS", 0)) / 1000
    for name, pod in pod_specs(docs):
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pre = preStop_seconds(pod["containers"][0])
        if not grace > pre + delay + drain:
            problems.append(
                f"{name}: terminationGracePeriodSeconds {grace} <= preStop {pre:g} s + shutdown delay {delay:g} s"
                f" + drain {drain:g} s (src/main.ts)"
            )
    return problems


def check_security(docs: list[Doc]) -> list[str]:
    """Non-root as the image's user, read-only root filesystem, and the data folder and /tmp on writable volumes."""
    image, problems = dockerfile_runtime(), []
    data_dir = settings(docs).get("ASM_FER_DATA_DIR", "./data")
    if not data_dir.startswith("/"):
        data_dir = f"{image['workdir'].rstrip('/')}/{data_dir.removeprefix('./')}"
    for name, pod in pod_specs(docs):
        sc = pod.get("securityContext", {})
        if (sc.get("runAsUser"), sc.get("runAsGroup"), sc.get("runAsNonRoot")) != (image["uid"], image["gid"], True):
            runs = f"{sc.get('runAsUser')}:{sc.get('runAsGroup')}"
            problems.append(f"{name}: runs as {runs}, the Dockerfile's user is {image['uid']}:{image['gid']} (and runAsNonRoot)")
        c = pod["containers"][0]
        csc = c.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True or csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
        # The rest of Pod Security's "restricted" profile that applies here (its admission controller is not run).
        seccomp = csc.get("seccompProfile", sc.get("seccompProfile", {})).get("type")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []) or seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: restricted profile needs capabilities.drop [ALL] and a RuntimeDefault seccomp profile")
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v or "persistentVolumeClaim" in v}
        mounts = {m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in writable and not m.get("readOnly")}
        for path in (data_dir, "/tmp"):
            if path not in mounts:
                problems.append(f"{name}: {path} must be a writable volume (the root filesystem is read-only)")
    return problems


def check_replicas(docs: list[Doc]) -> list[str]:
    """More than one replica only with the PostgreSQL audit trail: SQLite's audits.db is per pod."""
    maxima = [h["spec"]["maxReplicas"] for h in by_kind(docs, "HorizontalPodAutoscaler")]
    maxima += [d["spec"].get("replicas", 1) for d in by_kind(docs, "Deployment")]
    maxima += [i["spec"]["predictor"].get("maxReplicas", 1) for i in by_kind(docs, "InferenceService")]
    if max(maxima, default=1) > 1 and "ASM_FER_AUDIT_DB" not in settings(docs):
        return [f"up to {max(maxima)} replicas without ASM_FER_AUDIT_DB: each pod would keep its own SQLite audit trail"]
    problems = []
    secrets = {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
    for name, pod in pod_specs(docs):
        refs = {e.get("secretRef", {}).get("name") for e in pod["containers"][0].get("envFrom", [])}
        if max(maxima, default=1) > 1 and not refs & secrets:
            problems.append(f"{name}: does not take the Secret that holds ASM_FER_AUDIT_DB")
    return problems


def quantity(q: str | int) -> float:
    units = {"Ki": 1024, "Mi": MiB, "Gi": 1024 * MiB, "m": 1e-3}
    s = str(q)
    for unit, factor in units.items():
        if s.endswith(unit):
            return float(s[: -len(unit)]) * factor
    return float(s)


def check_resources(docs: list[Doc]) -> list[str]:
    """Sized from docs/results.md and docs/configuration.md ("Threads"): memory request above the soak's peak RSS with
    one worker (318 MiB) plus 95 MiB per further worker, limit at the 1.5 GiB ceiling the pixel budgets keep the process under;
    CPUs for workers x intra-op threads, both set explicitly (the service's defaults follow the node's cores)."""
    env, problems = settings(docs), []
    if "ASM_FER_WORKERS" not in env or "ASM_FER_INTRA_OP_THREADS" not in env:
        return ["ASM_FER_WORKERS and ASM_FER_INTRA_OP_THREADS must be set: unset, they follow the node's core count"]
    workers = int(env["ASM_FER_WORKERS"])
    threads = workers * int(env["ASM_FER_INTRA_OP_THREADS"])
    floor = 318 + 95 * (workers - 1)
    for name, pod in pod_specs(docs):
        r = pod["containers"][0].get("resources", {})
        req, lim = r.get("requests", {}), r.get("limits", {})
        if quantity(req.get("memory", 0)) < floor * MiB:
            problems.append(f"{name}: memory request {req.get('memory')} is below the measured {floor} MiB for {workers} workers")
        if quantity(lim.get("memory", 0)) < 1536 * MiB:
            problems.append(f"{name}: memory limit {lim.get('memory')} is below the 1.5 GiB the pixel budgets allow for")
        if quantity(req.get("cpu", 0)) < threads:
            problems.append(f"{name}: cpu request {req.get('cpu')} is below workers x intra-op threads = {threads}")
    return problems


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_wiring(docs: list[Doc]) -> list[str]:
    """Service, PodDisruptionBudget, HPA and ServiceMonitor point at what exists."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for svc in by_kind(docs, "Service"):
        if not any(selects(svc["spec"]["selector"], lb) for lb in pod_labels):
            problems.append(f"Service/{svc['metadata']['name']} selects no Deployment's pods")
        names = {
            p.get("name") for d in deployments.values() for p in d["spec"]["template"]["spec"]["containers"][0].get("ports", [])
        }
        for p in svc["spec"]["ports"]:
            if p["targetPort"] not in names:
                problems.append(f"Service: targetPort {p['targetPort']} is no container port name")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        if not any(selects(pdb["spec"]["selector"]["matchLabels"], lb) for lb in pod_labels):
            problems.append("PodDisruptionBudget selects no Deployment's pods")
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"HPA targets {hpa['spec']['scaleTargetRef']['name']}, no such Deployment")
    for sm in by_kind(docs, "ServiceMonitor"):
        services = [
            s for s in by_kind(docs, "Service") if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        ports = {p["name"] for s in services for p in s["spec"]["ports"]}
        if not services or any(ep.get("port") not in ports for ep in sm["spec"]["endpoints"]):
            problems.append("ServiceMonitor selects no Service, or names a port it lacks")
    return problems


CHECKS: dict[str, Callable[[list[Doc]], list[str]]] = {
    "environment": check_env,
    "probes and ports": check_probes_and_ports,
    "termination": check_termination,
    "security": check_security,
    "replicas": check_replicas,
    "resources": check_resources,
    "wiring": check_wiring,
}


def _deployment_pod(docs: list[Doc]) -> Doc:
    pod: Doc = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    return pod


def _set(f: Callable[[list[Doc]], None]) -> Callable[[list[Doc]], list[Doc]]:
    def mutate(docs: list[Doc]) -> list[Doc]:
        docs = copy.deepcopy(docs)
        f(docs)
        return docs

    return mutate


# Each mutation of the real manifests must make its check report a problem.
NEGATIVE: list[tuple[str, str, Callable[[list[Doc]], list[Doc]]]] = [
    ("environment", "a misspelt variable", _set(lambda d: by_kind(d, "ConfigMap")[0]["data"].update(ASM_FER_WORKRES="1"))),
    (
        "termination",
        "grace period equal to the drain",
        _set(lambda d: _deployment_pod(d).update(terminationGracePeriodSeconds=10)),
    ),
    (
        "termination",
        "a 20 s shutdown delay",
        _set(lambda d: by_kind(d, "ConfigMap")[0]["data"].update(ASM_FER_SHUTDOWN_DELAY_MS="20000")),
    ),
    ("security", "running as root", _set(lambda d: _deployment_pod(d)["securityContext"].update(runAsUser=0))),
    ("security", "no seccomp profile", _set(lambda d: _deployment_pod(d)["securityContext"].pop("seccompProfile"))),
    (
        "probes and ports",
        "readiness on /healthz",
        _set(lambda d: _deployment_pod(d)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz")),
    ),
    ("replicas", "six SQLite replicas", _set(lambda d: by_kind(d, "Secret")[0]["stringData"].pop("ASM_FER_AUDIT_DB"))),
    ("resources", "threads left to the node's cores", _set(lambda d: by_kind(d, "ConfigMap")[0]["data"].pop("ASM_FER_WORKERS"))),
    (
        "resources",
        "a 512Mi memory limit",
        _set(lambda d: _deployment_pod(d)["containers"][0]["resources"]["limits"].update(memory="512Mi")),
    ),
]


def main() -> int:
    problems: list[str] = []
    docs: list[Doc] = []
    files = sorted(p for p in MANIFESTS.rglob("*.yaml"))
    for path in files:
        for doc in load_docs(path):
            docs.append(doc)
            problems += [
                f"{path.relative_to(ROOT)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {e}"
                for e in schema_errors(doc)
            ]
    kinds = sorted({d["kind"] for d in docs})
    versions = " and ".join(K8S_VERSIONS)
    print(
        f"schemas: {len(docs)} resources in {len(files)} files ({', '.join(kinds)}); core kinds at Kubernetes {versions} strict"
    )

    for name, check in CHECKS.items():
        found = check(docs)
        problems += [f"{name}: {p}" for p in found]
        print(f"check {name}: {'ok' if not found else 'FAILED'}")

    rejected = 0
    for path in sorted(BROKEN.glob("*.yaml")):
        expect = re.search(r"^# expect: (.+)$", path.read_text(), flags=re.M)
        errors = [e for doc in load_docs(path) for e in schema_errors(doc)]
        wanted = expect.group(1) if expect else None
        if not errors or wanted is None or not any(wanted in e for e in errors):
            problems.append(f"{path.relative_to(ROOT)} was not rejected with {wanted or '(no # expect: line)'!r}: {errors}")
        else:
            rejected += 1
    for check_name, what, mutate in NEGATIVE:
        if CHECKS[check_name](mutate(docs)):
            rejected += 1
        else:
            problems.append(f"negative case not caught by check {check_name}: {what}")
    print(f"negative cases rejected: {rejected} of {len(list(BROKEN.glob('*.yaml'))) + len(NEGATIVE)}")

    for p in problems:
        print(f"  {p}")
    print("deploy manifests: " + ("ok" if not problems else f"FAILED ({len(problems)} problems)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
