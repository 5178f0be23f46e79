import * as iam from "aws-cdk-lib/aws-iam";

/**
 * What the SSM agent needs for Session Manager and nothing else: register the instance and open the
 * session channels (the actions of AWS's own AWSCloud9SSMInstanceProfile). Unlike
 * AmazonSSMManagedInstanceCore it grants no `ssm:GetParameter(s)` (which reads every parameter of
 * the region), no documents, associations, inventory or patching, and no `ec2messages` (Run Command).
 */
export const sessionManagerActions = [
  "ssm:UpdateInstanceInformation",
  "ssmmessages:CreateControlChannel",
  "ssmmessages:CreateDataChannel",
  "ssmmessages:OpenControlChannel",
  "ssmmessages:OpenDataChannel",
] as const;

/** Session Manager for an instance role, as an inline policy statement. */
export function grantSessionManager(role: iam.IRole): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: "SessionManager",
      actions: [...sessionManagerActions],
      // These ssmmessages actions have no resource types; the agent calls them before it knows a session.
      resources: ["*"],
    }),
  );
}
