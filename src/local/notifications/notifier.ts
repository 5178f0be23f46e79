import { randomUUID } from "node:crypto";
import { httpCheck } from "../../shared/http-check.ts";
import { derive } from "../../stack/derived.ts";
import type { ResolvedStack } from "../../stack/schema.ts";
import { ControllerGuard, type ControllerGuardOptions } from "../controller-guard.ts";
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
/** Retries of a webhook whose delivery failed, with back-off (SNS retries HTTP deliveries too). */
const WEBHOOK_RETRIES = 3;

export class Notifier {
  /** The topic the AWS side creates (dns-failover stack), in the local account id AWS tools use. */
  readonly topicArn: string;
  private readonly settings: ResolvedStack["notifications"];
  /** A failed delivery is an event, then a retry with back-off. */
  private readonly guard: ControllerGuard;

  constructor(
    stack: ResolvedStack,
    private readonly events: EventPublisher,
    guard?: Pick<ControllerGuardOptions, "clock" | "backoff">,
  ) {
    this.settings = stack.notifications;
    this.topicArn = derive(stack).notificationTopic.arn(LOCAL_ACCOUNT_ID);
    this.guard = new ControllerGuard({ controller: "notifier", events, ...guard });
  }

  /**
   * Delivers to one webhook; resolves with whether the first attempt was delivered. A failed one is
   * a controller.error event and is retried with back-off, up to WEBHOOK_RETRIES times.
   */
  private deliver(url: string, body: string): Promise<boolean> {
    return new Promise((resolveFirst) => {
      let attempts = 0;
      this.guard.retryUntilDone(async () => {
        attempts++;
        try {
          await this.post(url, body);
          resolveFirst(true);
        } catch (error) {
          resolveFirst(false);
          if (attempts <= WEBHOOK_RETRIES) throw error;
          this.guard.report(error, `the delivery to ${url} is given up after ${attempts} attempts`);
        }
      }, `the delivery to ${url} is`);
    });
  }

  private async post(url: string, body: string): Promise<void> {
    const res = await httpCheck(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-amz-sns-message-type": "Notification" },
      body,
      timeoutMs: 2000,
    });
    if (res.statusCode >= 300) throw new Error(`webhook ${url} answered ${res.statusCode}`);
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
    const body = JSON.stringify(notification);
    const results = await Promise.all(this.settings.webhooks.map((url) => this.deliver(url, body)));
    this.events.publish({
      type: "notification.sent",
      subject,
      message: notification.Message,
      webhooks: this.settings.webhooks.length,
      delivered: results.filter(Boolean).length,
    });
  }
}
