// Uses the demo's events.d.ts the way a typed front end would; `tsc --strict` must accept it.
import type { EventMap, EventName, UserPublic } from "../../sse-demo/contract/events";

function on<K extends EventName>(name: K, handler: (payload: EventMap[K]) => void): void {
  void name;
  void handler;
}

on("user_updated", (user) => {
  const id: number = user.id;
  const name: string = user.username;
  const version: number = user.version;
  void [id, name, version];
  // @ts-expect-error: public events carry no email
  void user.email;
});
on("user_email_changed", (change) => {
  const email: string = change.email;
  void email;
});
on("user_deleted", (gone) => {
  const id: number = gone.id;
  void id;
});
const shown: UserPublic[] = [];
void shown;

// The generated map plugs into the browser client's types as it is.
import type { Client } from "../../sse-core/assets/client";
declare const client: Client<EventMap>;
client.on("user_email_changed", (change) => {
  const email: string = change.email;
  void email;
});
// @ts-expect-error: not an event of this service
client.on("user_renamed", () => {});
