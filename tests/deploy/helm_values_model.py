"""Pydantic models of the parts of Dagster's Helm chart values (chart 1.13.x) that xbot sets.

Written from the chart's own values schema (its `helm/dagster/schema` pydantic models), since
the chart's values.schema.json ships only inside the chart archive, which cannot be fetched
offline here. Every model forbids keys the chart does not know, so a misspelt key (which Helm
would silently ignore) fails the test. Kubernetes sub-objects (resources, env sources) are
checked for shape, not against the full Kubernetes OpenAPI.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Image(Strict):
    repository: str = Field(min_length=1)
    tag: str = Field(min_length=1)
    pullPolicy: Literal["Always", "IfNotPresent", "Never"]


class NamedRef(Strict):
    """A ConfigMapEnvSource / SecretEnvSource (``envFrom``)."""

    name: str

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value


class Resources(Strict):
    requests: dict[Literal["cpu", "memory"], str] = {}
    limits: dict[Literal["cpu", "memory"], str] = {}

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        for key, quantity in value.items():
            if not QUANTITY.match(str(quantity)):
                raise ValueError(f"{key}: {quantity!r} is not a Kubernetes quantity")
        return value


class Service(Strict):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"]
    port: int = Field(gt=0, lt=65536)
    annotations: dict[str, str] | None = None


class Enabled(Strict):
    enabled: bool


class Webserver(Strict):
    replicaCount: int | None = Field(default=None, ge=1)
    image: Image | None = None
    service: Service | None = None
    env: dict[str, str] | list[dict[str, Any]] | None = None
    envConfigMaps: list[NamedRef] | None = None
    envSecrets: list[NamedRef] | None = None
    resources: Resources | None = None
    enableReadOnly: bool | None = None
    logLevel: str | None = None


class UserDeployment(Strict):
    name: str
    image: Image
    dagsterApiGrpcArgs: list[str] | None = None
    codeServerArgs: list[str] | None = None
    includeConfigInLaunchedRuns: Enabled | None = None
    port: int = Field(gt=0, lt=65536)
    env: dict[str, str] | list[dict[str, Any]] | None = None
    envConfigMaps: list[NamedRef] | None = None
    envSecrets: list[NamedRef] | None = None
    resources: Resources | None = None
    labels: dict[str, str] | None = None
    replicaCount: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value


class UserDeployments(Strict):
    enabled: bool
    enableSubchart: bool
    imagePullSecrets: list[NamedRef] | None = None
    deployments: list[UserDeployment] = Field(min_length=1)


class PostgreSQL(Strict):
    enabled: bool
    image: dict[str, Any] | None = None
    postgresqlHost: str
    postgresqlUsername: str
    postgresqlPassword: str
    postgresqlDatabase: str
    postgresqlParams: dict[str, Any] = {}
    postgresqlScheme: str | None = None
    service: dict[Literal["port"], int]


class RunK8sConfig(Strict):
    containerConfig: dict[str, Any] | None = None
    podSpecConfig: dict[str, Any] | None = None
    podTemplateSpecMetadata: dict[str, Any] | None = None
    jobSpecConfig: dict[str, Any] | None = None
    jobMetadata: dict[str, Any] | None = None


class K8sRunLauncherConfig(Strict):
    image: Image | None = None
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"]
    jobNamespace: str | None = None
    loadInclusterConfig: bool
    kubeconfigFile: str | None = None
    envConfigMaps: list[NamedRef] = []
    envSecrets: list[NamedRef] = []
    envVars: list[str] = []
    labels: dict[str, str] | None = None
    failPodOnRunFailure: bool | None = None
    resources: Resources | None = None
    runK8sConfig: RunK8sConfig | None = None


class RunLauncherConfig(Strict):
    k8sRunLauncher: K8sRunLauncherConfig | None = None
    celeryK8sRunLauncher: dict[str, Any] | None = None


class RunLauncher(Strict):
    type: Literal["K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"]
    config: RunLauncherConfig


class TagConcurrencyLimit(Strict):
    key: str
    value: str | dict[Literal["applyLimitPerUniqueValue"], bool] | None = None
    limit: int = Field(ge=0)


class QueuedRunCoordinatorConfig(Strict):
    maxConcurrentRuns: int | None = None
    tagConcurrencyLimits: list[TagConcurrencyLimit] | None = None
    dequeueIntervalSeconds: int | None = None
    dequeueNumWorkers: int | None = None
    dequeueUseThreads: bool | None = None


class RunCoordinator(Strict):
    enabled: bool
    type: Literal["QueuedRunCoordinator", "CustomRunCoordinator"]
    config: dict[Literal["queuedRunCoordinator"], QueuedRunCoordinatorConfig]


class Workers(Strict):
    useThreads: bool
    numWorkers: int | None = None
    numSubmitWorkers: int | None = None


class Daemon(Strict):
    enabled: bool
    image: Image | None = None
    runCoordinator: RunCoordinator
    heartbeatTolerance: int | None = None
    env: dict[str, str] | list[dict[str, Any]] | None = None
    envConfigMaps: list[NamedRef] | None = None
    envSecrets: list[NamedRef] | None = None
    resources: Resources | None = None
    runMonitoring: dict[str, Any] | None = None
    runRetries: dict[str, Any] | None = None
    sensors: Workers | None = None
    schedules: Workers | None = None


class Pools(Strict):
    defaultLimit: int | None = None
    granularity: Literal["run", "op"] | None = None
    opGranularityRunBuffer: int | None = None


class Concurrency(Strict):
    enabled: bool = False
    pools: Pools = Pools()
    runs: dict[str, Any] = {}


class Global(Strict):
    postgresqlSecretName: str | None = None
    dagsterHome: str | None = None
    serviceAccountName: str | None = None
    celeryConfigSecretName: str | None = None


class DagsterValues(Strict):
    """The top level: only the chart's own keys (an override file sets a subset)."""

    global_: Global | None = Field(default=None, alias="global")
    dagsterWebserver: Webserver | None = None
    dagsterUserDeployments: UserDeployments = Field(alias="dagster-user-deployments")
    postgresql: PostgreSQL
    generatePostgresqlPasswordSecret: bool
    generateCeleryConfigSecret: bool | None = None
    rabbitmq: Enabled | None = None
    redis: Enabled | None = None
    flower: Enabled | None = None
    ingress: dict[str, Any] | None = None
    imagePullSecrets: list[NamedRef] | None = None
    computeLogManager: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    runLauncher: RunLauncher
    pythonLogs: dict[str, Any] | None = None
    dagsterDaemon: Daemon
    busybox: dict[str, Any] | None = None
    migrate: dict[str, Any] | None = None
    telemetry: Enabled | None = None
    serviceAccount: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    concurrency: Concurrency | None = None
    additionalInstanceConfig: dict[str, Any] | None = None


class ObjectMeta(Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value


ENV_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class Secret(Strict):
    apiVersion: Literal["v1"]
    kind: Literal["Secret"]
    metadata: ObjectMeta
    type: Literal["Opaque"]
    stringData: dict[str, str]

    @field_validator("stringData")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not ENV_KEY.match(k)]
        if bad:
            raise ValueError(f"invalid secret keys {bad}")
        return value


class ConfigMap(Strict):
    apiVersion: Literal["v1"]
    kind: Literal["ConfigMap"]
    metadata: ObjectMeta
    data: dict[str, str]
