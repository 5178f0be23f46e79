import { Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";

export interface InstanceSettingsProps {
  /** The group's name; the parameters live under `/stayup/<name>/`. */
  name: string;
  role: iam.IRole;
  /** Setting name (a shell variable name) → value. */
  settings: Record<string, string>;
}

const settingName = /^[A-Z][A-Z0-9_]*$/;

/**
 * Seed 003: configuration kept off the instance, in Systems Manager Parameter Store, so a
 * replacement reads the same settings at boot. One String parameter per setting under one path;
 * the instance role may read that path and nothing else in Parameter Store. Secrets stay in
 * Secrets Manager: a parameter holds the secret's ARN, never its value.
 */
export class InstanceSettings extends Construct {
  readonly path: string;
  readonly parameters: ssm.StringParameter[] = [];
  /** Shell that loads every setting into a variable of its name (after IMDS set $REGION). */
  readonly bootCommands: string[];

  constructor(scope: Construct, id: string, props: InstanceSettingsProps) {
    super(scope, id);
    this.path = `/stayup/${props.name}`;
    for (const [key, value] of Object.entries(props.settings)) {
      if (!settingName.test(key)) throw new Error(`instance setting "${key}" is not a shell variable name`);
      this.parameters.push(
        new ssm.StringParameter(this, key, {
          parameterName: `${this.path}/${key}`,
          stringValue: value,
          description: `stayup instance setting ${key} of ${props.name}, read at boot`,
        }),
      );
    }
    const stack = Stack.of(this);
    const parameterArn = (name: string) =>
      `arn:${stack.partition}:ssm:${stack.region}:${stack.account}:parameter${name}`;
    // Its own statement (Session Manager's permissions are managed elsewhere in this role).
    // GetParametersByPath is authorized against the path asked for, so the path itself is the
    // only resource: no wildcard, and no other parameter of the account is readable.
    props.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "ReadThisGroupsInstanceSettings",
        actions: ["ssm:GetParametersByPath"],
        resources: [parameterArn(this.path)],
      }),
    );
    const expected = Object.keys(props.settings).length;
    this.bootCommands = [
      `aws ssm get-parameters-by-path --region "$REGION" --path ${this.path} --query 'Parameters[].[Name,Value]' --output text > /run/stayup-settings.tsv`,
      // A boot that cannot read its settings fails loudly instead of starting half-configured.
      `test "$(wc -l < /run/stayup-settings.tsv)" -eq ${expected}`,
      `while IFS=$'\\t' read -r name value; do printf '%s=%q\\n' "\${name##*/}" "$value"; done < /run/stayup-settings.tsv > /run/stayup-settings.sh`,
      ". /run/stayup-settings.sh",
    ];
  }
}
