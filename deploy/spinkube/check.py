#!/usr/bin/env python3
"""Offline checks of the SpinKube manifests (scripts/deploy-check.sh runs this in its venv).

1. Every document of deploy/spinkube/*.yaml against its schema, strictly (unknown fields are
   errors): Kubernetes' own for built-in kinds (the kubernetes-validate package), schemas/*.json
   for SpinApp, SpinAppExecutor and ScaledObject, and the upstream SpinKube CRDs in
   schemas/upstream/, with a drift check of schemas/ against them.
2. The manifests against the app: SpinApp components, variables and chaining targets against
   spin.toml; probe, Ingress and bridge delivery paths against spin.toml's routes; Secret and
   ConfigMap keys, Services, autoscaler targets and the bridges' kafka-bridge.toml (against the
   structs of runtime-ext/kafka-bridge/src/config.rs) against each other.
3. Self-tests: broken copies of the manifests, each of which must be reported.
"""

import base64
import copy
import importlib.resources
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UPSTREAM_CRDS = HERE / "schemas" / "upstream"
K8S_VERSION = "1.33.0"
NAMESPACE = "spinyard"
CLUSTER_SCOPED = {"Namespace", "RuntimeClass"}
CRD_SCHEMAS = {
    ("core.spinkube.dev/v1alpha1", "SpinApp"): "spinapp.json",
    ("core.spinkube.dev/v1alpha1", "SpinAppExecutor"): "spinappexecutor.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
}
UPSTREAM_FILES = {
    "SpinApp": "core.spinkube.dev_spinapps.yaml",
    "SpinAppExecutor": "core.spinkube.dev_spinappexecutors.yaml",
}
SPIN_HEALTH = "/.well-known/spin/health"  # answered by Spin itself, whatever the components
TEMPLATE = re.compile(r"\{\{\s*([a-z0-9_]+)\s*\}\}")


class Loader(yaml.SafeLoader):
    """YAML with duplicate keys refused, as the API server's strict field validation does."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        for key in {k for k in keys if keys.count(k) > 1}:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", node.start_mark)
        return super().construct_mapping(node, deep)


# --- inputs ----------------------------------------------------------------------------------


def load_manifests():
    """{file name: [documents]} for every *.yaml here, kustomization.yaml included."""
    return {
        p.name: [d for d in yaml.load_all(p.read_text(), Loader) if d is not None] for p in sorted(HERE.glob("*.yaml"))
    }


def load_app():
    spin = tomllib.loads((ROOT / "spin.toml").read_text())
    routes = [(t["route"], t["component"]) for t in spin.get("trigger", {}).get("http", [])]
    return {
        "variables": spin.get("variables", {}),
        "components": spin.get("component", {}),
        "routes": routes,
        "bridge_schema": bridge_schema((ROOT / "runtime-ext/kafka-bridge/src/config.rs").read_text()),
    }


def bridge_schema(source):
    """A JSON schema of kafka-bridge.toml read off config.rs's serde structs (deny_unknown_fields,
    rename, default, skip, Option, Vec, BTreeMap), so that the check follows the bridge's own parser."""
    structs = {}
    for attrs, name, body in re.findall(r"((?:#\[[^\n]*\]\n)*)pub struct (\w+) \{\n(.*?)\n\}", source, re.S):
        fields, pending = [], ""
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("#[serde"):
                pending += line
            elif m := re.match(r"pub (\w+): (.+),$", line):
                fields.append((m[1], m[2], pending))
                pending = ""
        structs[name] = ("deny_unknown_fields" in attrs, fields)

    def schema(rust_type):
        if m := re.fullmatch(r"BTreeMap<String, (.+)>", rust_type):
            return {"type": "object", "additionalProperties": schema(m[1])}
        if m := re.fullmatch(r"(Option|Vec)<(.+)>", rust_type):
            return schema(m[2]) if m[1] == "Option" else {"type": "array", "items": schema(m[2])}
        if rust_type == "String":
            return {"type": "string"}
        if rust_type in ("u64", "u32", "usize"):
            return {"type": "integer", "minimum": 0}
        if rust_type == "i32":
            return {"type": "integer"}
        if rust_type == "bool":
            return {"type": "boolean"}
        closed, fields = structs[rust_type]
        out = {"type": "object", "properties": {}, "required": []}
        if closed:
            out["additionalProperties"] = False
        for name, field_type, serde in fields:
            if "skip" in serde:
                continue
            key = m[1] if (m := re.search(r'rename = "([^"]+)"', serde)) else name
            out["properties"][key] = schema(field_type)
            if "default" not in serde and not field_type.startswith("Option<"):
                out["required"].append(key)
        return out

    return schema("Config")


def crd_schemas():
    """The JSON schemas of the custom kinds, and a registry that resolves their $refs and the
    Kubernetes definitions they use."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    definitions = json.loads((root / "_definitions.json").read_text())
    own = {key: json.loads((HERE / "schemas" / name).read_text()) for key, name in CRD_SCHEMAS.items()}
    registry = Registry().with_resources(
        [(definitions["$id"], Resource.from_contents(definitions))]
        + [(s["$id"], Resource.from_contents(s)) for s in own.values()]
    )
    return root, own, registry


def upstream_schema(kind):
    """The upstream CRD's openAPIV3Schema as JSON schema: objects with properties closed, as the
    API server prunes and (with strict field validation) rejects unknown fields."""
    path = UPSTREAM_CRDS / UPSTREAM_FILES[kind]

    def close(node):
        if isinstance(node, dict):
            node = {k: close(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
        elif isinstance(node, list):
            node = [close(v) for v in node]
        return node

    crd = yaml.safe_load(path.read_text())
    return close(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


# --- schemas ---------------------------------------------------------------------------------


def at(error):
    return ".".join(str(p) for p in error.absolute_path) or "(top)"


def validate_schemas(files, problems):
    root, own, registry = crd_schemas()
    upstream = {kind: upstream_schema(kind) for kind in UPSTREAM_FILES}
    for file, docs in files.items():
        if file == "kustomization.yaml":
            continue
        for doc in docs:
            name = f"{file}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            schemas = []
            if key in own:
                schemas.append(("", own[key]))
                if key[1] in upstream:
                    schemas.append(("upstream CRD: ", upstream[key[1]]))
            else:
                group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(key[0]))
                schema_file = root / f"{str(key[1]).lower()}-{group_version}.json"
                if not schema_file.is_file():
                    problems.append(f"{name}: no schema for {key[0]} {key[1]} (Kubernetes {K8S_VERSION}, or schemas/)")
                    continue
                schemas.append(("", json.loads(schema_file.read_text())))
            for label, schema in schemas:
                validator = jsonschema.Draft202012Validator(schema, registry=registry)
                for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
                    problems.append(f"{name}: {label}{at(error)}: {error.message}")


def schema_drift(problems, own=None):
    """schemas/ (or `own`, the same by kind) against the upstream CRDs: the same properties, required fields and types at every level the upstream CRD spells out."""
    if own is None:
        _, own, _ = crd_schemas()

    def deref(node, root):
        while "$ref" in node and node["$ref"].startswith("#/$defs/"):
            node = root["$defs"][node["$ref"].split("/")[-1]]
        return node

    def compare(mine, theirs, path, root):
        mine = deref(mine, root)
        if "$ref" in mine:  # a Kubernetes definition
            return
        if "type" in theirs and "type" in mine and theirs["type"] != mine["type"]:
            problems.append(f"schemas drift at {path}: type {mine['type']} where the CRD has {theirs['type']}")
        if "properties" in theirs:
            ours = set(mine.get("properties", {}))
            wanted = set(theirs["properties"]) - ({"status"} if path.count(".") == 0 else set())
            for missing in sorted(wanted - ours):
                problems.append(f"schemas drift at {path}: the CRD has {missing}, the schema not")
            for extra in sorted(ours - wanted - {"apiVersion", "kind", "metadata"}):
                problems.append(f"schemas drift at {path}: the schema has {extra}, the CRD not")
            top = {"apiVersion", "kind", "metadata", "spec"} if "." not in path else set()
            if set(theirs.get("required", [])) != set(mine.get("required", [])) - top:
                problems.append(
                    f"schemas drift at {path}: required {sorted(mine.get('required', []))} "
                    f"where the CRD has {sorted(theirs.get('required', []))}"
                )
            for key in wanted & ours - {"apiVersion", "kind", "metadata"}:
                compare(mine["properties"][key], theirs["properties"][key], f"{path}.{key}", root)
        if "items" in theirs and "items" in mine:
            compare(mine["items"], theirs["items"], f"{path}[]", root)

    for (_, kind), schema in own.items():
        if kind in UPSTREAM_FILES:
            compare(schema, upstream_schema(kind), kind, schema)


# --- the manifests against the app and each other ----------------------------------------------


class Cluster:
    """The objects of the manifests, by kind and name, with Secret and ConfigMap values."""

    def __init__(self, files):
        self.objects, self.problems, self.resolved = {}, [], {}
        for file, docs in files.items():
            if file == "kustomization.yaml":
                continue
            for doc in docs:
                key = (doc.get("kind"), doc.get("metadata", {}).get("name"))
                if key in self.objects:
                    self.problems.append(f"{file}: {key[0]}/{key[1]} is defined twice")
                self.objects[key] = doc

    def all(self, kind):
        return [(name, doc) for (k, name), doc in self.objects.items() if k == kind]

    def get(self, kind, name):
        return self.objects.get((kind, name))

    def data(self, kind, name):
        obj = self.get(kind, name)
        if obj is None:
            return None
        values = dict(obj.get("stringData") or {})
        for key, value in (obj.get("data") or {}).items():
            values[key] = base64.b64decode(value).decode() if kind == "Secret" else value
        return values

    def ref(self, selector, kind, where):
        """The value of a secretKeyRef / configMapKeyRef, reporting a missing object or key."""
        values = self.data(kind, selector.get("name", ""))
        if selector.get("optional") and (values is None or selector["key"] not in values):
            return None
        if values is None:
            self.problems.append(f"{where}: {kind} {selector.get('name')!r} does not exist")
        elif selector["key"] not in values:
            self.problems.append(f"{where}: {kind} {selector['name']!r} has no key {selector['key']!r}")
        else:
            return values[selector["key"]]
        return None

    def value(self, var, where):
        """A SpinApp variable's or a container env var's value; fieldRef values are placeholders."""
        source = var.get("valueFrom")
        if "value" in var and source:
            self.problems.append(f"{where}: both value and valueFrom")
        if not source:
            return var.get("value", "")
        if "secretKeyRef" in source:
            return self.ref(source["secretKeyRef"], "Secret", where)
        if "configMapKeyRef" in source:
            return self.ref(source["configMapKeyRef"], "ConfigMap", where)
        if "fieldRef" in source:
            return f"<{source['fieldRef']['fieldPath']}>"
        return "<resource>"

    def service_ports(self, name):
        """The ports of a Service: one in the manifests, or the one the operator makes for a SpinApp."""
        if self.get("SpinApp", name):
            return {80}
        service = self.get("Service", name)
        return None if service is None else {p["port"] for p in service["spec"].get("ports", [])}

    def check_address(self, address, default_port, where):
        """An address in this namespace (host[:port] or URL) must be a Service with that port."""
        parts = urlsplit(address if "://" in address else f"//{address}")
        host = parts.hostname or ""
        m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?", host)
        if host in ("127.0.0.1", "localhost", "::1"):
            self.problems.append(f"{where}: {address} is the pod itself")
        if not m or m[2] != NAMESPACE:
            return
        port = parts.port or default_port
        ports = self.service_ports(m[1])
        if ports is None:
            self.problems.append(f"{where}: {address}: no Service {m[1]!r} (nor SpinApp) in the manifests")
        elif port not in ports:
            self.problems.append(f"{where}: {address}: Service {m[1]!r} has no port {port} (it has {sorted(ports)})")

    def pod_templates(self):
        for kind in ("Deployment", "StatefulSet"):
            for name, doc in self.all(kind):
                yield f"{kind}/{name}", doc, doc["spec"]["template"]


def route_of(path, app):
    """The component Spin routes `path` to (exact beats wildcard, the longest wildcard wins)."""
    best = None
    for route, component in app["routes"]:
        wildcard = route.endswith("/...")
        base = route[:-4] if wildcard else route
        if path == base or (wildcard and path.startswith(base.rstrip("/") + "/")):
            rank = (not wildcard, len(base))
            if best is None or rank >= best[0]:
                best = (rank, component)
    return best[1] if best else None


def default_of(variable, app):
    return str(app["variables"].get(variable, {}).get("default", ""))


def substitute(template, values, app):
    """A spin.toml template with the SpinApp's variable values, or else spin.toml's defaults."""
    return TEMPLATE.sub(lambda m: values.get(m[1]) or default_of(m[1], app), template)


def covers(path, kind, other):
    """Whether an Ingress path of pathType `kind` (Exact, Prefix) matches the path `other`."""
    return other == path or (kind == "Prefix" and other.startswith(path.rstrip("/") + "/"))


def check_kustomization(files, cluster):
    kustomization = (files.get("kustomization.yaml") or [{}])[0]
    listed = kustomization.get("resources", [])
    present = [f for f in files if f != "kustomization.yaml"]
    for missing in sorted(set(present) - set(listed)):
        cluster.problems.append(f"kustomization.yaml: {missing} is not in resources")
    for extra in sorted(set(listed) - set(present)):
        cluster.problems.append(f"kustomization.yaml: resource {extra} is not a file here")
    if set(kustomization) - {"apiVersion", "kind", "resources"} or kustomization.get("kind") != "Kustomization":
        cluster.problems.append("kustomization.yaml: expected a Kustomization with resources only")
    for (kind, name), doc in cluster.objects.items():
        namespace = doc.get("metadata", {}).get("namespace")
        if kind not in CLUSTER_SCOPED and namespace != NAMESPACE:
            cluster.problems.append(f"{kind}/{name}: namespace {namespace!r}, not {NAMESPACE!r}")


def check_spinapps(cluster, app):
    problems, images = cluster.problems, set()
    autoscaled = {
        doc["spec"]["scaleTargetRef"]["name"]
        for kind in ("HorizontalPodAutoscaler", "ScaledObject")
        for _, doc in cluster.all(kind)
    }
    for name, doc in cluster.all("SpinApp"):
        spec, where = doc["spec"], f"SpinApp/{name}"
        images.add(spec.get("image"))
        components = spec.get("components")
        if not components:
            problems.append(f"{where}: no components: every SpinApp deploys its components selectively")
            components = []
        for component in components:
            if component not in app["components"]:
                problems.append(f"{where}: {component!r} is not a component of spin.toml")
        components = [c for c in components if c in app["components"]]

        executor = cluster.get("SpinAppExecutor", spec.get("executor"))
        if executor is None:
            problems.append(f"{where}: no SpinAppExecutor {spec.get('executor')!r} in its namespace")
        else:
            runtime_class = executor["spec"].get("deploymentConfig", {}).get("runtimeClassName")
            if runtime_class and not cluster.get("RuntimeClass", runtime_class):
                problems.append(f"SpinAppExecutor/{spec['executor']}: no RuntimeClass {runtime_class!r}")
        if spec.get("enableAutoscaling"):
            if "replicas" in spec:
                problems.append(f"{where}: replicas is set with enableAutoscaling (the operator's webhook refuses it)")
            if name not in autoscaled:
                problems.append(f"{where}: enableAutoscaling but no HPA or ScaledObject targets Deployment {name!r}")
        elif spec.get("replicas", 1) < 1:
            problems.append(f"{where}: replicas must be at least 1 without autoscaling")
        for side in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(spec.get("resources", {}).get(side, {})):
                problems.append(f"{where}: resources.{side} needs cpu and memory")

        # Probes, metrics annotations: paths the SpinApp's own components serve.
        paths = {
            f"checks.{probe}": spec.get("checks", {}).get(probe, {}).get("httpGet", {}).get("path")
            for probe in ("readiness", "liveness")
        }
        if "prometheus.io/path" in spec.get("podAnnotations", {}):
            paths["podAnnotations prometheus.io/path"] = spec["podAnnotations"]["prometheus.io/path"]
        for field, path in paths.items():
            if path is None:
                problems.append(f"{where}: no {field}")
            elif path != SPIN_HEALTH and route_of(path, app) not in components:
                problems.append(f"{where}: {field} {path} is routed to {route_of(path, app)!r}, not deployed here")

        # Variables: declared by spin.toml, each used by a deployed component, values resolvable.
        values = {}
        for var in spec.get("variables", []):
            label = f"{where}: variable {var['name']}"
            if var["name"] in values:
                problems.append(f"{label}: set twice")
            if var["name"] not in app["variables"]:
                problems.append(f"{label}: not in spin.toml [variables]")
            values[var["name"]] = cluster.value(var, label)
        used = {}
        for component in components:
            config = app["components"][component]
            templates = list((config.get("variables") or {}).values()) + config.get("allowed_outbound_hosts", [])
            for text in templates:
                for var in TEMPLATE.findall(text):
                    used.setdefault(var, component)
        for var in sorted(set(values) - set(used)):
            problems.append(f"{where}: variable {var} is set but no component deployed here uses it")

        for var, component in sorted(used.items()):
            default = default_of(var, app)
            if var not in values and re.search(r"127\.0\.0\.1|localhost|\.spin\.internal", default):
                problems.append(
                    f"{where}: {component} uses {var}, whose default {default!r} is not reachable from a pod: set it"
                )
        for component in components:
            for host in app["components"][component].get("allowed_outbound_hosts", []):
                address = substitute(host, values, app)
                if "*" in address:
                    continue
                if m := re.search(r"//([a-z0-9-]+)\.spin\.internal", address):
                    if m[1] not in components:
                        problems.append(
                            f"{where}: {component} may call {address} ({host}), but component {m[1]!r} "
                            "is not deployed in this SpinApp: set a variable to its Service"
                        )
                    continue
                scheme = urlsplit(address).scheme
                cluster.check_address(
                    address,
                    {"http": 80, "https": 443, "postgres": 5432}.get(scheme),
                    f"{where}: {component} allowed host {host}",
                )
        cluster.resolved[name] = values  # for the bridge checks

        # Runtime config: the default key-value store is pod-local SQLite (the metrics counters).
        secret = spec.get("runtimeConfig", {}).get("loadFromSecret")
        if secret is None:
            problems.append(f"{where}: no runtimeConfig.loadFromSecret (the pod-local key-value store)")
            continue
        text = cluster.ref({"name": secret, "key": "runtime-config.toml"}, "Secret", f"{where}: runtimeConfig")
        if text is None:
            continue
        try:
            stores = tomllib.loads(text).get("key_value_store", {})
        except tomllib.TOMLDecodeError as error:
            problems.append(f"Secret/{secret}: runtime-config.toml does not parse: {error}")
            continue
        default = stores.get("default", {})
        if default.get("type") != "spin" or "path" in default:
            problems.append(
                f'Secret/{secret}: [key_value_store.default] must be type "spin" without path '
                "(in-memory, pod-local: Prometheus scrapes each pod)"
            )
        for component in components:
            for store in app["components"][component].get("key_value_stores", []):
                if store != "default" and store not in stores:
                    problems.append(f"{where}: {component} uses key-value store {store!r}, not in Secret/{secret}")
    if len(images) > 1:
        problems.append(f"SpinApps use different images {sorted(map(str, images))}: one OCI image of the whole app")


def check_workloads(cluster):
    """Env, volume and Service references of the Deployments and StatefulSets."""
    problems = cluster.problems
    for where, workload, template in cluster.pod_templates():
        pod = template["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for container in pod.get("containers", []):
            for var in container.get("env", []):
                cluster.value(var, f"{where}: env {var['name']}")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes.keys() | claims:
                    problems.append(f"{where}: volumeMount {mount['name']!r} has no volume")
        for volume in volumes.values():
            for kind, field, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if field in volume:
                    source = volume[field]
                    if cluster.get(kind, source.get(name_key)) is None:
                        problems.append(f"{where}: volume {volume['name']}: no {kind} {source.get(name_key)!r}")
                    for item in source.get("items", []):
                        cluster.ref(
                            {"name": source.get(name_key), "key": item["key"]},
                            kind,
                            f"{where}: volume {volume['name']}",
                        )
    for name, service in cluster.all("Service"):
        selector = service["spec"].get("selector", {})
        matches = [
            (where, t)
            for where, _, t in cluster.pod_templates()
            if selector and selector.items() <= t["metadata"].get("labels", {}).items()
        ]
        if not matches:
            problems.append(f"Service/{name}: its selector {selector} matches no pod template")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for where, template in matches:
                named = {
                    p.get("name"): p["containerPort"]
                    for c in template["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                if target not in named and target not in named.values():
                    problems.append(f"Service/{name}: targetPort {target} is not a port of {where}")


def bridges(cluster, app):
    """The kafka-bridge Deployments: name -> (effective config, Deployment), with their checks."""
    problems, found = cluster.problems, {}
    for name, deployment in cluster.all("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {v["name"]: v for v in container.get("env", [])}
        if "KAFKA_BRIDGE_CONFIG" not in env:
            continue
        where = f"Deployment/{name}"
        path = cluster.value(env["KAFKA_BRIDGE_CONFIG"], where) or ""
        mount = next(
            (m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")), None
        )
        volume = next((v for v in pod.get("volumes", []) if mount and v["name"] == mount["name"]), {})
        if "configMap" not in volume:
            problems.append(f"{where}: KAFKA_BRIDGE_CONFIG {path} is not in a mounted ConfigMap")
            continue
        config_map = volume["configMap"]["name"]
        text = cluster.ref(
            {"name": config_map, "key": path[len(mount["mountPath"].rstrip("/")) + 1 :]}, "ConfigMap", where
        )
        if text is None:
            continue
        label = f"ConfigMap/{config_map}: kafka-bridge.toml"
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            problems.append(f"{label} does not parse: {error}")
            continue
        errors = list(jsonschema.Draft202012Validator(app["bridge_schema"]).iter_errors(config))
        problems += [f"{label}: {at(e)}: {e.message}" for e in errors]
        if errors:
            continue
        values = {k: cluster.value(v, f"{where}: env {k}") for k, v in env.items()}
        for secret in ["KAFKA_BRIDGE_SECRET", "KAFKA_BRIDGE_DELIVERY_SECRET"]:
            if not values.get(secret):
                problems.append(f"{where}: {secret} is not set (the bridge refuses to start)")
        config.setdefault("listen", "127.0.0.1:3100")
        config.setdefault("components_url", "http://127.0.0.1:3000")
        for var, (table, key) in {
            "KAFKA_BRIDGE_LISTEN": (None, "listen"),
            "KAFKA_BRIDGE_COMPONENTS_URL": (None, "components_url"),
            "KAFKA_BROKERS": ("kafka", "brokers"),
            "MONGODB_URI": ("mongodb", "uri"),
        }.items():
            if values.get(var):
                (config.setdefault(table, {}) if table else config)[key] = values[var]
        topics = {t["name"]: t for t in config["kafka"]["topic"]}
        for topic in topics.values():
            if topic.get("partitions", 3) < 1 or topic.get("replication", 1) < 1:
                problems.append(f"{label}: topic {topic['name']}: partitions and replication must be at least 1")
        listen_port = int(config["listen"].rsplit(":", 1)[1])
        if listen_port not in {p["containerPort"] for p in container.get("ports", [])}:
            problems.append(f"{where}: listens on {config['listen']}, not a container port")
        for broker in config["kafka"]["brokers"].split(","):
            cluster.check_address(broker, 9092, f"{label}: broker")
        if config.get("mongodb", {}).get("collection"):
            if not config["mongodb"].get("uri"):
                problems.append(f"{label}: collections but no MongoDB URI (file or MONGODB_URI)")
            else:
                cluster.check_address(config["mongodb"]["uri"], 27017, f"{where}: MONGODB_URI")
        target = re.fullmatch(r"http://([a-z0-9-]+)\.[a-z0-9.-]+", config["components_url"])
        spinapp = cluster.get("SpinApp", target[1]) if target else None
        if spinapp is None:
            problems.append(f"{label}: components_url {config['components_url']} is not a SpinApp's Service")
        cluster.check_address(config["components_url"], 80, f"{label}: components_url")
        for sub in config.get("subscription", []):
            for topic in (sub["topic"], sub["dead_letter_topic"]):
                if topic not in topics:
                    problems.append(f"{label}: subscription of {sub['group']}: topic {topic!r} is not declared")
            if sub.get("max_attempts", 5) < 1 or sub.get("batch_size", 500) < 1:
                problems.append(
                    f"{label}: subscription of {sub['group']}: max_attempts and batch_size must be at least 1"
                )
            component = route_of(sub["route"], app)
            if spinapp is not None and component not in spinapp["spec"].get("components", []):
                problems.append(
                    f"{label}: route {sub['route']} is served by {component!r}, "
                    f"not by SpinApp {spinapp['metadata']['name']!r} of components_url"
                )
        found[name] = (config, deployment)
    return found


def check_bridge_users(cluster, app, found):
    """Each SpinApp's kafka_bridge_address is a bridge that serves its topics and collections."""
    for service_name, service in cluster.all("Service"):
        deployment = next(
            (
                n
                for n, (_, d) in found.items()
                if service["spec"].get("selector", {}).items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ),
            None,
        )
        if deployment is None:
            continue
        config = found[deployment][0]
        for name, values in cluster.resolved.items():
            address = values.get("kafka_bridge_address") or ""
            if not re.match(rf"{service_name}\.{NAMESPACE}\.svc", address):
                continue
            where = f"SpinApp/{name}"
            for var, value in values.items():
                if var.endswith("_topic") and value not in {t["name"] for t in config["kafka"]["topic"]}:
                    cluster.problems.append(f"{where}: {var} {value!r} is not a topic of bridge {deployment}")
                if var.endswith("_mongodb_database"):
                    collection = values.get(var.replace("_database", "_collection"))
                    if (value, collection) not in {
                        (c["database"], c["name"]) for c in config.get("mongodb", {}).get("collection", [])
                    }:
                        cluster.problems.append(
                            f"{where}: collection {value}.{collection} is not served by bridge {deployment}"
                        )


def check_autoscalers(cluster, found):
    problems, targets = cluster.problems, {}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for name, doc in cluster.all(kind):
            ref, where = doc["spec"]["scaleTargetRef"], f"{kind}/{name}"
            if ref.get("kind", "Deployment") != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1":
                problems.append(
                    f"{where}: targets {ref.get('apiVersion')} {ref.get('kind')}, not an apps/v1 Deployment"
                )
            target = ref["name"]
            targets.setdefault(target, []).append(where)
            spinapp, deployment = cluster.get("SpinApp", target), cluster.get("Deployment", target)
            if spinapp is None and deployment is None:
                problems.append(f"{where}: no Deployment {target!r} (nor SpinApp creating one)")
                continue
            if deployment is not None and "replicas" in deployment["spec"]:
                problems.append(f"{where}: Deployment {target!r} sets replicas, which each apply would reset")
            if spinapp is not None and not spinapp["spec"].get("enableAutoscaling"):
                problems.append(
                    f"{where}: SpinApp {target!r} does not set enableAutoscaling (the operator would reset replicas)"
                )
            low, high = (
                (doc["spec"].get("minReplicas", 1), doc["spec"]["maxReplicas"])
                if kind == "HorizontalPodAutoscaler"
                else (doc["spec"].get("minReplicaCount", 0), doc["spec"].get("maxReplicaCount", 100))
            )
            if low > high:
                problems.append(f"{where}: minimum {low} above maximum {high}")
            if any(m.get("resource", {}).get("name") == "cpu" for m in doc["spec"].get("metrics", [])):
                requests = (
                    spinapp["spec"].get("resources", {}).get("requests", {})
                    if spinapp
                    else deployment["spec"]["template"]["spec"]["containers"][0]
                    .get("resources", {})
                    .get("requests", {})
                )
                if "cpu" not in requests:
                    problems.append(f"{where}: CPU utilization of {target!r}, which requests no CPU")
            for trigger in doc["spec"].get("triggers", []):
                if trigger["type"] != "kafka":
                    continue
                meta = trigger["metadata"]
                config = found.get(target, (None,))[0]
                if config is None:
                    problems.append(f"{where}: kafka trigger on {target!r}, which is not a kafka-bridge")
                    continue
                if (meta.get("topic"), meta.get("consumerGroup")) not in {
                    (s["topic"], s["group"]) for s in config.get("subscription", [])
                }:
                    problems.append(
                        f"{where}: topic {meta.get('topic')!r} / group {meta.get('consumerGroup')!r} "
                        f"is not a subscription of {target}"
                    )
                if meta.get("bootstrapServers") != config["kafka"]["brokers"]:
                    problems.append(
                        f"{where}: bootstrapServers {meta.get('bootstrapServers')!r} is not "
                        f"{target}'s brokers {config['kafka']['brokers']!r}"
                    )
                partitions = {t["name"]: t.get("partitions", 3) for t in config["kafka"]["topic"]}.get(
                    meta.get("topic"), 0
                )
                if high > partitions and meta.get("allowIdleConsumers") != "true":
                    problems.append(f"{where}: up to {high} consumers for {partitions} partitions")
    for target, sources in targets.items():
        if len(sources) > 1:
            problems.append(f"Deployment {target!r} has several autoscalers: {', '.join(sources)}")


def check_ingress(cluster, app, found):
    problems = cluster.problems
    private = {
        s["route"] for config, _ in found.values() for s in config.get("subscription", []) if s["route"].startswith("/")
    }
    private |= {f"/{component}/metrics" for component in app["components"]}
    for name, ingress in cluster.all("Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for item in rule.get("http", {}).get("paths", []):
                path, kind = item["path"], item["pathType"]
                service = item["backend"]["service"]
                where = f"Ingress/{name}: {path} ({kind})"
                ports = cluster.service_ports(service["name"])
                if ports is None:
                    problems.append(f"{where}: no Service {service['name']!r} (nor SpinApp)")
                    continue
                if service["port"].get("number") not in ports:
                    problems.append(f"{where}: Service {service['name']!r} has no port {service['port']}")
                if kind not in ("Exact", "Prefix"):
                    problems.append(f"{where}: pathType Exact or Prefix, so that what it covers is known")
                    continue
                for hidden in sorted(p for p in private if covers(path, kind, p)):
                    problems.append(f"{where}: publishes {hidden}, which must stay inside the cluster")
                spinapp = cluster.get("SpinApp", service["name"])
                if spinapp is None:
                    continue
                served = spinapp["spec"].get("components", [])
                covered = [path] + [r[:-4] if r.endswith("/...") else r for r, _ in app["routes"] if kind == "Prefix"]
                for p in (p for p in covered if covers(path, kind, p)):
                    if route_of(p, app) not in served:
                        problems.append(
                            f"{where}: {p} is routed to {route_of(p, app)!r}, not by SpinApp {service['name']!r}"
                        )


def check_network_policies(cluster):
    """Each NetworkPolicy's pod selectors (its own and its peers') select pods of the manifests,
    and the ports it opens are ports those pods listen on: a label or port renamed on one side
    only would silently cut traffic off."""
    pods = [(name, template["metadata"].get("labels", {}), template) for name, _, template in cluster.pod_templates()]
    for name, spinapp in cluster.all("SpinApp"):
        pods.append((f"SpinApp/{name}", spinapp["spec"].get("podLabels", {}), None))

    def selected(selector):
        wanted = selector.get("matchLabels", {})
        return [(n, t) for n, labels, t in pods if all(labels.get(k) == v for k, v in wanted.items())]

    for name, policy in cluster.all("NetworkPolicy"):
        where = f"NetworkPolicy/{name}"
        spec = policy["spec"]
        targets = selected(spec["podSelector"])
        if spec["podSelector"] and not targets:
            cluster.problems.append(f"{where}: podSelector {spec['podSelector']} selects no pod")
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer and not selected(peer["podSelector"]):
                    cluster.problems.append(f"{where}: from podSelector {peer['podSelector']} selects no pod")
            for port in rule.get("ports", []):
                for target, template in targets:
                    if template is None:
                        listening = {80}  # a SpinApp's pods: Spin's HTTP trigger
                    else:
                        listening = {
                            p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
                        }
                    if port["port"] not in listening:
                        cluster.problems.append(f"{where}: port {port['port']}: {target} does not listen on it")
    if cluster.all("NetworkPolicy") and not any(
        p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for _, p in cluster.all("NetworkPolicy")
    ):
        cluster.problems.append("NetworkPolicy: no default-deny policy, so the others allow more than they say")


def check(files, app):
    """Every problem of the manifests, as messages."""
    problems = []
    validate_schemas(files, problems)
    cluster = Cluster(files)
    try:
        check_kustomization(files, cluster)
        check_spinapps(cluster, app)
        check_workloads(cluster)
        found = bridges(cluster, app)
        check_bridge_users(cluster, app, found)
        check_autoscalers(cluster, found)
        check_ingress(cluster, app, found)
        check_network_policies(cluster)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as error:
        if not problems:
            raise
        cluster.problems.append(f"cross-checks stopped ({type(error).__name__}: {error}): fix the schema errors first")
    return list(dict.fromkeys(problems + cluster.problems))


# --- self-tests --------------------------------------------------------------------------------


def find(files, kind, name):
    return next(d for docs in files.values() for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name)


def set_bridge_toml(files, name, edit):
    data = find(files, "ConfigMap", f"kafka-bridge-{name}")["data"]
    data["kafka-bridge.toml"] = edit(data["kafka-bridge.toml"])


SELF_TESTS = [
    (
        "an unknown field in a Deployment",
        "'bogus' was unexpected",
        lambda f: find(f, "Deployment", "kafka-bridge-purchases")["spec"]["template"]["spec"]["containers"][0].update(
            bogus=1
        ),
    ),
    (
        "a NetworkPolicy selecting a label no pod has",
        "selects no pod",
        lambda f: [doc["spec"].pop("podLabels") for doc in f["spinapps.yaml"] if doc["kind"] == "SpinApp"],
    ),
    (
        "a NetworkPolicy opening a port nobody listens on",
        "port 27018: StatefulSet/mongodb does not listen on it",
        lambda f: find(f, "NetworkPolicy", "mongodb")["spec"]["ingress"][0]["ports"][0].update(port=27018),
    ),
    (
        "an unknown field in a SpinApp",
        "'replica' was unexpected",
        lambda f: find(f, "SpinApp", "backend")["spec"].update(replica=2),
    ),
    (
        "a wrong type in a ScaledObject",
        "is not of type 'string'",
        lambda f: find(f, "ScaledObject", "kafka-bridge-purchases")["spec"]["triggers"][0]["metadata"].update(
            lagThreshold=100
        ),
    ),
    (
        "a SpinApp component that does not exist",
        "'catalog' is not a component",
        lambda f: find(f, "SpinApp", "catalogue")["spec"].update(components=["catalog"]),
    ),
    (
        "a missing Secret key",
        "has no key 'appdb-password'",
        lambda f: find(f, "Secret", "spinyard-secrets")["stringData"].pop("appdb-password"),
    ),
    (
        "a variable spin.toml does not declare",
        "db_pasword: not in spin.toml",
        lambda f: find(f, "SpinApp", "backend")["spec"]["variables"].append(
            {"name": "backend_db_pasword", "value": "x"}
        ),
    ),
    (
        "a chained component in another SpinApp, not overridden",
        "is not deployed in this SpinApp",
        lambda f: find(f, "SpinApp", "customer-web-server")["spec"].update(
            variables=[
                v
                for v in find(f, "SpinApp", "customer-web-server")["spec"]["variables"]
                if v["name"] != "customer_mgmt_api_host"
            ]
        ),
    ),
    (
        "a database host left at its loopback default",
        "is not reachable from a pod",
        lambda f: find(f, "SpinApp", "catalogue")["spec"].update(
            variables=[
                v for v in find(f, "SpinApp", "catalogue")["spec"]["variables"] if v["name"] != "catalogue_db_host"
            ]
        ),
    ),
    (
        "a probe on another component's route",
        "is routed to 'catalogue'",
        lambda f: find(f, "SpinApp", "backend")["spec"]["checks"]["readiness"]["httpGet"].update(
            path="/catalogue/health"
        ),
    ),
    (
        "an Ingress prefix publishing a delivery route",
        "publishes /time-service/kafka/events",
        lambda f: find(f, "Ingress", "spinyard")["spec"]["rules"][0]["http"]["paths"].append(
            {
                "path": "/time-service",
                "pathType": "Prefix",
                "backend": {"service": {"name": "time-service", "port": {"number": 80}}},
            }
        ),
    ),
    (
        "an Ingress backend that does not exist",
        "no Service 'catalog'",
        lambda f: find(f, "Ingress", "spinyard")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
            name="catalog"
        ),
    ),
    (
        "a bridge route its target does not serve",
        "not by SpinApp 'time-service'",
        lambda f: set_bridge_toml(
            f, "time-events", lambda t: t.replace('"/time-service/kafka/events"', '"/customer-web-server/x"')
        ),
    ),
    (
        "an unknown field in a bridge's kafka-bridge.toml",
        "'secret' was unexpected",
        lambda f: set_bridge_toml(f, "purchases", lambda t: 'secret = "s"\n' + t),
    ),
    (
        "a bridge TOML that does not parse",
        "kafka-bridge.toml does not parse",
        lambda f: set_bridge_toml(f, "purchases", lambda t: t + "\n[kafka\n"),
    ),
    (
        "an HPA on a Deployment that does not exist",
        "no Deployment 'frontend'",
        lambda f: find(f, "HorizontalPodAutoscaler", "frontend-api")["spec"]["scaleTargetRef"].update(name="frontend"),
    ),
    (
        "a ScaledObject on a topic its bridge does not consume",
        "is not a subscription of kafka-bridge-purchases",
        lambda f: find(f, "ScaledObject", "kafka-bridge-purchases")["spec"]["triggers"][0]["metadata"].update(
            topic="purchase"
        ),
    ),
    (
        "a shared key-value store",
        "without path",
        lambda f: find(f, "Secret", "spin-runtime-config")["stringData"].update(
            {"runtime-config.toml": '[key_value_store.default]\ntype = "spin"\npath = "/data/kv.db"\n'}
        ),
    ),
    (
        "a manifest the kustomization does not list",
        "new.yaml is not in resources",
        lambda f: f.update({"new.yaml": []}),
    ),
]


def self_test(files, app, baseline):
    passed, failed = 0, []
    for name, expected, mutate in SELF_TESTS:
        broken = copy.deepcopy(files)
        mutate(broken)
        new = [p for p in check(broken, app) if p not in baseline]
        if any(expected in p for p in new):
            passed += 1
        else:
            failed.append(f"self-test {name!r}: expected a problem with {expected!r}, got {new or 'none'}")
    return passed, failed


def drift_self_test():
    """The drift check finds a property dropped from schemas/spinapp.json and a type changed:
    (passed, failures)."""
    _, own, _ = crd_schemas()
    passed, failed = 0, []
    key = ("core.spinkube.dev/v1alpha1", "SpinApp")
    for name, expected, mutate in [
        ("a property dropped", "the CRD has replicas", lambda spec: spec["properties"].pop("replicas")),
        ("a type changed", "type integer where the CRD has boolean", lambda spec: spec["properties"]["enableAutoscaling"].update({"type": "integer"})),
    ]:
        broken = copy.deepcopy(own)
        mutate(broken[key]["properties"]["spec"])
        problems = []
        schema_drift(problems, broken)
        if any(expected in p for p in problems):
            passed += 1
        else:
            failed.append(f"drift self-test {name!r}: expected {expected!r}, got {problems or 'none'}")
    return passed, failed


def main():
    # Without the upstream CRDs a third of the checks would silently not run.
    missing = [name for name in UPSTREAM_FILES.values() if not (UPSTREAM_CRDS / name).is_file()]
    if missing:
        print(f"  PROBLEM the upstream SpinKube CRDs {missing} are missing from {UPSTREAM_CRDS}")
        return 1
    try:
        files, app = load_manifests(), load_app()
    except (yaml.YAMLError, tomllib.TOMLDecodeError, OSError) as error:
        print(f"  PROBLEM {error}")
        return 1
    problems = check(files, app)
    schema_drift(problems)
    documents = sum(len(d) for f, d in files.items() if f != "kustomization.yaml")
    print(
        f"deploy/spinkube: {documents} documents in {len(files) - 1} files;",
        f"Kubernetes {K8S_VERSION}, schemas/ and the upstream SpinKube CRDs",
    )
    for problem in problems:
        print(f"  PROBLEM {problem}")
    passed, failed = self_test(files, app, problems)
    drift = drift_self_test()
    passed, failed = passed + drift[0], failed + drift[1]
    for failure in failed:
        print(f"  FAILED {failure}")
    print(f"{len(problems)} problem(s)")
    print(f"self-tests: {passed} passed, {len(failed)} failed")
    return 1 if problems or failed else 0


if __name__ == "__main__":
    sys.exit(main())
