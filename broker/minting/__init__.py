"""What the broker signs: SAML assertions (AWS SAML federation) and OIDC ID tokens."""
