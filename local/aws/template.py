"""Read template.yaml the way CloudFormation would: SAM translation, parameters, conditions and intrinsics.

The local runtime and the tests build every table, queue, event source and route from this module,
so the template is the only list of resources there is. A resource whose ``Condition`` is false is not
in that list, as it would not be in a deployed stack.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from local import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LOCAL_ACCOUNT_ID = "123456789012"

# `sam build`/`sam package` replace local code paths with S3 locations before the transform; so do we.
_PLACEHOLDER_CODE_URI = "s3://herald-local/code.zip"

NO_VALUE = "AWS::NoValue"
# What `{"Ref": "AWS::NoValue"}` resolves to inside the resolver: the dict entry or list item holding it is dropped.
_REMOVED: Final = object()


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
    # Each condition is evaluated once, from the parameters in force when it is first asked for.
    _conditions: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _evaluating: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

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
        """Logical id -> resource, leaving out every resource whose ``Condition`` is false."""
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return {
            name: resource
            for name, resource in resources.items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> properties of every resource of one CloudFormation type."""
        return {
            name: resource.get("Properties", {})
            for name, resource in self.resources.items()
            if resource["Type"] == resource_type
        }

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        """The value of one condition of the template's ``Conditions`` section (evaluated once, then cached).

        Raises
        ------
        KeyError
            ``name`` is not in the template's ``Conditions``.
        ValueError
            The condition refers to itself, uses a function conditions cannot use, or refers to
            something other than a parameter or pseudo parameter.
        """
        if name in self._conditions:
            return self._conditions[name]
        definitions: dict[str, Any] = self.template.get("Conditions", {})
        if name not in definitions:
            known = ", ".join(sorted(definitions)) or "none"
            raise KeyError(f"condition {name}: not in the template's Conditions (defined: {known})")
        if name in self._evaluating:
            raise ValueError(f"condition {name}: circular through {' -> '.join([*self._evaluating, name])}")
        self._evaluating.append(name)
        try:
            value = self._evaluate(name, definitions[name])
        finally:
            self._evaluating.pop()
        self._conditions[name] = value
        return value

    def _evaluate(self, name: str, expression: Any) -> bool:
        """One condition function: Fn::Equals, Fn::Not, Fn::And, Fn::Or or a ``{"Condition": name}`` reference."""
        if not isinstance(expression, dict) or len(expression) != 1:
            raise ValueError(f"condition {name}: {expression!r} is not a condition function")
        ((function, argument),) = expression.items()
        if function == "Condition" and isinstance(argument, str):
            return self.condition(argument)
        if function == "Fn::Equals" and isinstance(argument, list) and len(argument) == 2:
            left, right = (self._condition_operand(name, operand) for operand in argument)
            return bool(left == right)
        if function == "Fn::Not" and isinstance(argument, list) and len(argument) == 1:
            return not self._evaluate(name, argument[0])
        if function in {"Fn::And", "Fn::Or"} and isinstance(argument, list) and argument:
            values = [self._evaluate(name, operand) for operand in argument]  # all of them, so every error shows
            return all(values) if function == "Fn::And" else any(values)
        raise ValueError(f"condition {name}: {function} with {argument!r} is not a condition function")

    def _condition_operand(self, name: str, operand: Any) -> Any:
        """An Fn::Equals operand, resolved against parameters and pseudo parameters only, compared as text.

        CloudFormation evaluates conditions before it creates anything, so a Ref to a resource is an
        error there; resolving against a stack with no physical ids makes it one here too, whatever has
        been provisioned by the time the condition is first asked for.
        """
        parameters_only = replace(self, physical_ids={}, arns={})
        parameters_only._conditions, parameters_only._evaluating = self._conditions, self._evaluating
        try:
            value = parameters_only.resolve(operand)
        except (KeyError, ValueError) as error:
            reason = error.args[0] if error.args else error
            raise ValueError(f"condition {name} may only use parameters and pseudo parameters: {reason}") from error
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return value

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, value: Any) -> Any:
        """Resolve Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select and Fn::If against this stack.

        Only the branch an Fn::If takes is resolved. A dict entry or list item that resolves to
        ``{"Ref": "AWS::NoValue"}`` is left out, as CloudFormation leaves the property out; a value
        that is ``AWS::NoValue`` as a whole resolves to ``None``. A Ref to a CommaDelimitedList or
        List<...> parameter resolves to its list of members.
        """
        resolved = self._resolve(value)
        return None if resolved is _REMOVED else resolved

    def _resolve(self, value: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic function
        if isinstance(value, list):
            return [item for item in (self._resolve(item) for item in value) if item is not _REMOVED]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref_value(argument)
            if key == "Fn::GetAtt":
                resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(resource, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                delimiter, items = argument
                return delimiter.join(str(item) for item in self._resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self._resolve(items)[int(self._resolve(index))]
            if key == "Fn::If":
                return self._if(argument)
        resolved = ((key, self._resolve(item)) for key, item in value.items())
        return {key: item for key, item in resolved if item is not _REMOVED}

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3 and isinstance(argument[0], str)):
            raise ValueError(f"Fn::If takes [condition name, value if true, value if false], not {argument!r}")
        name, if_true, if_false = argument
        return self._resolve(if_true if self.condition(name) else if_false)

    def _ref_value(self, name: str) -> Any:
        """What a ``Ref`` stands for as a whole value: a list for a list parameter, removal for AWS::NoValue."""
        if name == NO_VALUE:
            return _REMOVED
        declared = str(self.template.get("Parameters", {}).get(name, {}).get("Type", "String"))
        if name in self.parameters and (declared == "CommaDelimitedList" or "List<" in declared):
            return [member.strip() for member in self._ref(name).split(",")]  # CloudFormation space-trims each
        return self._ref(name)

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def _ref(self, name: str) -> str:
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name == NO_VALUE:
            raise ValueError(f"{NO_VALUE} can only stand for a whole property value or list item, not inside text")
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

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                value = self._resolve(variables[name])
                if value is _REMOVED:
                    raise ValueError(f"Fn::Sub variable {name}: {NO_VALUE} cannot stand inside text")
                return str(value)
            if "." in name:
                resource, attribute = name.split(".", 1)
                return self._get_att(resource, attribute)
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)
