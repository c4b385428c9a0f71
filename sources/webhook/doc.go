// Package webhook receives the git push webhooks of GitHub, GitLab and
// Gitea on POST /v1/webhooks/git and turns each verified push into a Push:
// a signal to the daemon that the fleet repository changed and should be
// fetched now, rather than at the next poll.
//
// A Verifier holds the shared secret and checks each delivery the way its
// provider signs it:
//
//   - GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
//     the raw body; X-GitHub-Event is push (or ping, answered with OK);
//     X-GitHub-Delivery is the delivery ID.
//   - GitLab: X-Gitlab-Token is the secret itself, or, with a signing
//     token, webhook-signature holds "v1," and the base64 HMAC-SHA256 of
//     "<webhook-id>.<webhook-timestamp>.<body>" (Standard Webhooks), and the
//     timestamp must be within the clock window; X-Gitlab-Event is Push
//     Hook; the delivery ID is webhook-id when signed, else Idempotency-Key
//     or X-Gitlab-Event-UUID.
//   - Gitea: X-Gitea-Signature is the hex HMAC-SHA256 of the raw body;
//     X-Gitea-Event is push; X-Gitea-Delivery is the delivery ID.
//
// Configure the webhook with content type application/json and the push
// event only: anything else is refused, and GitLab disables a hook whose
// deliveries keep failing.
//
// # The threat
//
// The endpoint faces the network: anyone who can reach it can send
// anything. The signature (or GitLab's token) is the only authentication,
// so nothing is trusted before it holds: the body is bounded before it is
// hashed, and is not parsed until the signature is checked, in constant
// time, over the exact bytes received. Refusals say why in one word and
// never echo the body, a header or the secret.
//
// A signed delivery can be captured and sent again, and a replay must not
// cause work: an accepted delivery's ID is remembered in a bounded cache
// of recent IDs, and a second delivery with it is refused. Signatures
// other than GitLab's signed mode cover no timestamp, so a delivery older
// than the cache's memory could be replayed; that costs one fetch.
//
// Even a forged push can do little: the push only triggers a fetch, and
// what is applied is the commit fetched from the repository, read and
// checked like any other revision, never the payload's claims. A forged
// Changed list can at worst cause a fetch, or make the reconciler look at
// the wrong files in a commit it fetched itself. For the same reason a
// push that is refused costs nothing but latency: the poll still runs.
//
// What newcomers get wrong:
//
//   - Changed is a hint, not a diff. It is the union of the files the
//     payload's commits touch, which may be cut short (see Push.Truncated)
//     and is relative to Before, which need not be the revision last
//     applied.
//   - onPush runs on the request's goroutine. It must hand the push over
//     and return; a slow one makes the provider time out and retry.
//   - GitHub keeps X-GitHub-Delivery when a delivery is redelivered from
//     its settings page, so a manual redelivery of an accepted push is
//     refused as a replay. The next poll catches up anyway.
package webhook
