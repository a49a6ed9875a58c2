"""Kubernetes pods as a chaos target, through the official `kubernetes` client (``stoic[k8s]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fleet import Fleet, Member

ZONE_LABELS = ("zone", "topology.kubernetes.io/zone")
REGION_LABELS = ("region", "topology.kubernetes.io/region")


@dataclass(frozen=True)
class Pod:
    """A pod as the Simian Army sees it: ``id`` is ``namespace/name``."""

    id: str
    name: str
    namespace: str
    app: str
    region: str
    zone: str
    phase: str
    deleting: bool = False

    @property
    def alive(self) -> bool:
        return self.phase in ("Running", "Pending") and not self.deleting


class KubernetesTarget:
    """Pods selected by labels; terminate = delete with grace period 0 (the pod's controller replaces it).

    `api` is a ``kubernetes.client.CoreV1Api``; without one, the kube config (or the in-cluster
    service account) is loaded.
    """

    name = "kubernetes"

    def __init__(
        self,
        namespace: str = "default",
        selector: str = "",
        *,
        api: Any = None,
        app_label: str = "app",
        region_labels: tuple[str, ...] = REGION_LABELS,
        zone_labels: tuple[str, ...] = ZONE_LABELS,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must be a non-empty Kubernetes namespace")
        self.namespace = namespace
        self.selector = selector
        self.app_label = app_label
        self.region_labels = region_labels
        self.zone_labels = zone_labels
        self.api = api if api is not None else _load_api(kubeconfig, context)

    def fleet(self) -> Fleet:
        pods = self.api.list_namespaced_pod(self.namespace, label_selector=self.selector or None)
        return Fleet(self._pod(p) for p in pods.items)

    def terminate(self, member: Member) -> None:
        if not isinstance(member, Pod):
            raise TypeError(f"KubernetesTarget terminates Pods, got {type(member).__name__}")
        self.api.delete_namespaced_pod(member.name, member.namespace, grace_period_seconds=0)

    def _pod(self, pod: Any) -> Pod:
        labels: dict[str, str] = dict(pod.metadata.labels or {})
        return Pod(
            id=f"{pod.metadata.namespace}/{pod.metadata.name}",
            name=pod.metadata.name,
            namespace=pod.metadata.namespace,
            app=labels.get(self.app_label, "") or pod.metadata.name,
            region=_first(labels, self.region_labels),
            zone=_first(labels, self.zone_labels),
            phase=(pod.status.phase if pod.status is not None else None) or "Unknown",
            deleting=pod.metadata.deletion_timestamp is not None,
        )

    def __repr__(self) -> str:
        return f"KubernetesTarget(namespace={self.namespace!r}, selector={self.selector!r})"


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((labels[k] for k in keys if labels.get(k)), "unknown")


def _load_api(kubeconfig: str | None, context: str | None) -> Any:
    try:
        from kubernetes import client, config
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("KubernetesTarget needs the k8s extra: pip install 'stoic[k8s]'") from exc
    try:
        config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    except Exception:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.CoreV1Api()


__all__ = ["KubernetesTarget", "Pod"]
