package template_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stepevents/stepevents/events/template"
)

func TestValidEventName(t *testing.T) {
	for _, ok := range []string{"payment.processed", "payment.failed.retryable", "a.b", "v2_orders.created_at.x9", strings.Repeat("a", 127) + "." + strings.Repeat("b", 127)} {
		assert.NoError(t, template.ValidEventName(ok), ok)
	}
	for name, msg := range map[string]string{
		"":                              `event name must not be empty: use dot-separated lower-case segments, e.g. "payment.processed"`,
		"payment":                       `event name "payment" needs at least two dot-separated segments (domain.action), e.g. "order.validated"`,
		"payment.*":                     `event name "payment.*" contains a wildcard; * and > are only allowed in subscription patterns, not in published names`,
		"payment.>":                     `event name "payment.>" contains a wildcard; * and > are only allowed in subscription patterns, not in published names`,
		"pay*.x":                        `event name "pay*.x" contains a wildcard; * and > are only allowed in subscription patterns, not in published names`,
		".payment":                      `event name ".payment" has an empty segment (leading, trailing or doubled dot)`,
		"payment.":                      `event name "payment." has an empty segment (leading, trailing or doubled dot)`,
		"payment..processed":            `event name "payment..processed" has an empty segment (leading, trailing or doubled dot)`,
		"Payment.processed":             `event name "Payment.processed" contains 'P'; segments may only use lower-case letters, digits and _, separated by dots`,
		"payment-x.y":                   `event name "payment-x.y" contains '-'; segments may only use lower-case letters, digits and _, separated by dots`,
		"a." + strings.Repeat("b", 254): `event name is 256 characters long; at most 255 are allowed`,
	} {
		assert.EqualError(t, template.ValidEventName(name), msg, name)
	}
}

func TestValidNamespace(t *testing.T) {
	for _, ok := range []string{"a", "payments", "domain_events", "v2", strings.Repeat("n", 29)} {
		assert.NoError(t, template.ValidNamespace(ok), ok)
	}
	for ns, msg := range map[string]string{
		"":                      `namespace must not be empty: use lower-case letters, digits and _, starting with a letter`,
		"Payments":              `namespace "Payments" must be lower case (pgmq folds queue names to lower case, so "Payments" and "payments" would collide); use "payments"`,
		"2fa":                   `namespace "2fa" must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _`,
		"_x":                    `namespace "_x" must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _`,
		"a-b":                   `namespace "a-b" must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _`,
		"a;drop":                `namespace "a;drop" must match ^[a-z][a-z0-9_]*$: a lower-case letter, then lower-case letters, digits and _`,
		strings.Repeat("n", 30): `namespace "` + strings.Repeat("n", 30) + `" is 30 characters long; at most 29 are allowed so that "` + strings.Repeat("n", 30) + `_domain_events_dlq" fits pgmq's 47-character queue names`,
	} {
		assert.EqualError(t, template.ValidNamespace(ns), msg, ns)
	}
	// The longest namespace's DLQ is exactly pgmq's limit.
	assert.Len(t, strings.Repeat("n", template.MaxNamespaceLen)+"_domain_events_dlq", 47)
}

func TestValidPublisher(t *testing.T) {
	for _, ok := range []string{"PaymentEventPublisher", "DomainEvents::Publishers::PaymentEventPublisher", "payments.Publisher", "_x"} {
		assert.NoError(t, template.ValidPublisher(ok), ok)
	}
	for _, bad := range []string{"", "9lives", "a::", "a..b", "a-b", "a b", "::a"} {
		assert.Error(t, template.ValidPublisher(bad), bad)
	}
}

func TestValidRedactPointer(t *testing.T) {
	for _, ok := range []string{"/card", "/card/number", "/a~0b", "/a~1b", "/items/0/secret", "//x"} {
		assert.NoError(t, template.ValidRedactPointer(ok), ok)
	}
	for _, bad := range []string{"", "card", "/", "/a~", "/a~2"} {
		assert.Error(t, template.ValidRedactPointer(bad), bad)
	}
}

func TestEnumsValid(t *testing.T) {
	for _, c := range []template.Condition{"success", "failure", "retryable_failure", "permanent_failure", "always"} {
		assert.True(t, c.Valid(), c)
	}
	for _, c := range []template.Condition{"", "Success", "on_success"} {
		assert.False(t, c.Valid(), c)
	}
	for _, d := range []template.DeliveryMode{"durable", "fast", "broadcast"} {
		assert.True(t, d.Valid(), d)
	}
	for _, d := range []template.DeliveryMode{"", "Durable", "both"} {
		assert.False(t, d.Valid(), d)
	}
	for _, b := range []template.Backoff{"none", "linear", "exponential"} {
		assert.True(t, b.Valid(), b)
	}
	for _, b := range []template.Backoff{"", "fibonacci"} {
		assert.False(t, b.Valid(), b)
	}
}
