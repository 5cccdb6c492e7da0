//! The change feed's event types: the one list the store writes, `/events`
//! filters by and the OpenAPI document enumerates.

macro_rules! event_types {
    ($($variant:ident => $name:literal,)+) => {
        /// What happened to an object; written in the same transaction as the change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every type, in the order the documentation lists them.
            pub const ALL: &[EventType] = &[$(EventType::$variant,)+];

            /// The type's name on the wire and in the database (`object.verb`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    CustomerCreated => "customer.created",
    CustomerUpdated => "customer.updated",
    CustomerStatusChanged => "customer.status_changed",
    CustomerDeleted => "customer.deleted",
    PaymentMethodCreated => "payment_method.created",
    PaymentMethodUpdated => "payment_method.updated",
    PaymentMethodDefaultChanged => "payment_method.default_changed",
    PaymentMethodRevealed => "payment_method.revealed",
    PaymentMethodDeleted => "payment_method.deleted",
    ProviderLinked => "provider.linked",
    ProviderUnlinked => "provider.unlinked",
    CustomParameterDeclared => "custom_parameter.declared",
    CustomParameterRetired => "custom_parameter.retired",
    FinancingPlanUpdated => "financing_plan.updated",
    FinancingPlanDeleted => "financing_plan.deleted",
    CreditAccountOpened => "credit_account.opened",
    CreditAccountVccRevealed => "credit_account.vcc_revealed",
    CreditAccountClosed => "credit_account.closed",
    CreditAccountVerificationRequested => "credit_account.verification_requested",
    CreditAccountVerified => "credit_account.verified",
    CreditAccountVerificationFailed => "credit_account.verification_failed",
    CreditAccountVerificationLocked => "credit_account.verification_locked",
    TransactionRecorded => "transaction.recorded",
    WebhookEndpointCreated => "webhook_endpoint.created",
    WebhookEndpointUpdated => "webhook_endpoint.updated",
    WebhookEndpointSecretRotated => "webhook_endpoint.secret_rotated",
    WebhookEndpointTested => "webhook_endpoint.tested",
    WebhookEndpointDisabled => "webhook_endpoint.disabled",
    WebhookEndpointDeleted => "webhook_endpoint.deleted",
    ApiKeyCreated => "api_key.created",
    ApiKeyRevoked => "api_key.revoked",
}

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_read_back() {
        for (i, t) in EventType::ALL.iter().enumerate() {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert!(EventType::ALL[..i].iter().all(|u| u.as_str() != t.as_str()), "{t} twice");
            let (object, verb) = t.as_str().split_once('.').expect("object.verb");
            assert!(!object.is_empty() && !verb.is_empty());
        }
        assert_eq!(EventType::parse("customer.exploded"), None);
    }
}
