"""Read template.yaml the way CloudFormation would: SAM translation, parameters and intrinsic functions.

The local runtime and the tests build every table, queue, event source and route from this module,
so the template is the only list of resources there is.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from local import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LOCAL_ACCOUNT_ID = "123456789012"

# `sam build`/`sam package` replace local code paths with S3 locations before the transform; so do we.
_PLACEHOLDER_CODE_URI = "s3://herald-local/code.zip"


class _OfflinePolicyLoader:
    """samtranslator asks IAM for managed policy ARNs; the template uses none, so answer from memory."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as written (SAM), parsed with CloudFormation's short-form tags."""
    parsed: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return parsed


def translate(
    sam: dict[str, Any], region: str = "us-east-1", parameter_values: dict[str, str] | None = None
) -> dict[str, Any]:
    """Translate a SAM template to plain CloudFormation, offline.

    The translator inlines some parameters itself (e.g. a usage plan's Throttle), so pass the values
    that will be in force, or it inlines the defaults.
    """
    template = copy.deepcopy(sam)
    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = _PLACEHOLDER_CODE_URI
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in properties:
                properties[key] = _PLACEHOLDER_CODE_URI
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # samtranslator reads the region from boto3's default session
    try:
        translated: dict[str, Any] = transform(template, dict(parameter_values or {}), _OfflinePolicyLoader())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return translated


def parameter_env_name(parameter: str) -> str:
    """`MaxReceiveCount` -> `HERALD_MAX_RECEIVE_COUNT`: the variable that overrides a parameter locally."""
    return "HERALD_" + re.sub(r"(?<!^)(?=[A-Z])", "_", parameter).upper()


@dataclass
class Stack:
    """A translated template plus the values its intrinsics resolve to in one environment."""

    template: dict[str, Any]
    region: str = "us-east-1"
    account_id: str = LOCAL_ACCOUNT_ID
    stack_name: str = "herald-local"
    parameters: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)  # what Ref returns for a resource
    arns: dict[str, str] = field(default_factory=dict)  # what GetAtt .Arn returns

    @classmethod
    def from_file(
        cls, path: Path = TEMPLATE_PATH, overrides: dict[str, str] | None = None, region: str = "us-east-1"
    ) -> Stack:
        """Load and translate a template; parameters take overrides, else `HERALD_<PARAM>` env vars, else defaults."""
        sam = load_sam_template(path)
        parameters: dict[str, str] = {}
        for name, spec in sam.get("Parameters", {}).items():
            value = (overrides or {}).get(name, os.environ.get(parameter_env_name(name), spec.get("Default")))
            if value is None:
                raise ValueError(f"template parameter {name} has no default; set {parameter_env_name(name)}")
            parameters[name] = str(value)
        return cls(template=translate(sam, region, parameters), region=region, parameters=parameters)

    # ------------------------------------------------------------------ queries
    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> properties of every resource of one CloudFormation type."""
        return {
            name: resource.get("Properties", {})
            for name, resource in self.resources.items()
            if resource["Type"] == resource_type
        }

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, value: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic function
        """Resolve Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::Select against this stack."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(resource, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                delimiter, items = argument
                return delimiter.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
        return {key: self.resolve(item) for key, item in value.items()}

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }.get(name)

    def _ref(self, name: str) -> str:
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise KeyError(f"Ref {name}: not a parameter or a created resource")

    def _get_att(self, resource: str, attribute: str) -> str:
        if attribute == "Arn" and resource in self.arns:
            return self.arns[resource]
        if attribute in {"QueueName", "QueueUrl"} and resource in self.physical_ids:
            url = self.physical_ids[resource]
            return url.rsplit("/", 1)[-1] if attribute == "QueueName" else url
        raise KeyError(f"Fn::GetAtt {resource}.{attribute}: not available locally")

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                resource, attribute = name.split(".", 1)
                return self._get_att(resource, attribute)
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
