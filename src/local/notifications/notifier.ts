import { randomUUID } from "node:crypto";
import { request } from "undici";
import { derive, type ResolvedStack } from "../../stack/index.ts";
import type { EventPublisher } from "../events/bus.ts";

/** The JSON an SNS topic delivers to an HTTP subscription, so a webhook works for both. */
export interface SnsShapedNotification {
  Type: "Notification";
  MessageId: string;
  TopicArn: string;
  Subject: string;
  Message: string;
  Timestamp: string;
}

/** The account id of local AWS emulations (moto, LocalStack). */
export const LOCAL_ACCOUNT_ID = "000000000000";

/** Sends failover and failback notifications: to every webhook, and always as a log event. */
export class Notifier {
  /** The topic the AWS side creates (dns-failover stack), in the local account id AWS tools use. */
  readonly topicArn: string;
  private readonly settings: ResolvedStack["notifications"];

  constructor(
    stack: ResolvedStack,
    private readonly events: EventPublisher,
  ) {
    this.settings = stack.notifications;
    this.topicArn = derive(stack).notificationTopic.arn(LOCAL_ACCOUNT_ID);
  }

  async send(subject: string, message: Record<string, unknown>): Promise<void> {
    const notification: SnsShapedNotification = {
      Type: "Notification",
      MessageId: randomUUID(),
      TopicArn: this.topicArn,
      Subject: subject,
      Message: JSON.stringify(message),
      Timestamp: new Date().toISOString(),
    };
    const results = await Promise.all(
      this.settings.webhooks.map(async (url) => {
        try {
          const res = await request(url, {
            method: "POST",
            headers: { "content-type": "application/json", "x-amz-sns-message-type": "Notification" },
            body: JSON.stringify(notification),
            headersTimeout: 2000,
            bodyTimeout: 2000,
          });
          await res.body.dump();
          return res.statusCode < 300;
        } catch {
          return false;
        }
      }),
    );
    this.events.publish({
      type: "notification.sent",
      subject,
      message: notification.Message,
      webhooks: this.settings.webhooks.length,
      delivered: results.filter(Boolean).length,
    });
  }
}
