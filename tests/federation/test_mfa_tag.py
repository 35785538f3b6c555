"""``session_tags.mfa_tag``: ``KEY=true|false`` in the SAML PrincipalTag attributes (verified by
pysaml2 configured as AWS) and the ID token's ``https://aws.amazon.com/tags`` claim (verified by
PyJWT against the served JWKS); it counts toward AWS's 50 tags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from pydantic import ValidationError

from broker.mfa import stepped_up
from broker.minting.config import SessionTagsConfig
from broker.minting.keys import KeyRing
from broker.minting.tags import TagPolicy
from tests.federation.conftest import (
    ALICE,
    TAGS,
    AwsSamlVerifier,
    KeyFilesOnDisk,
    LiveBroker,
    make_grant,
    make_idp,
    utcnow,
)
from tests.federation.test_oidc_issuer import _issuer, _verify

A = "https://aws.amazon.com/SAML/Attributes/"
WITH_MFA = SessionTagsConfig.model_validate({**TAGS.model_dump(), "mfa_tag": "mfa"})


@pytest.mark.saml_peer
def test_the_saml_assertion_carries_the_mfa_tag(keyring: KeyRing, aws_verifier: Callable[..., AwsSamlVerifier]):
    idp = make_idp(keyring, tags=WITH_MFA)
    verifier = aws_verifier(idp.metadata())
    proved = stepped_up(ALICE, method="otp", at=utcnow().timestamp())
    with_mfa = verifier.attributes(idp.aws_response(identity=proved, grants=[make_grant()], session_duration=3600,
                                                    now=utcnow()).encoded)
    assert with_mfa[A + "PrincipalTag:mfa"] == ["true"]
    assert with_mfa[A + "PrincipalTag:Department"] == ["Platform"]  # the directory's tags stay
    without = verifier.attributes(idp.aws_response(identity=replace(ALICE, mfa_at=None), grants=[make_grant()],
                                                   session_duration=3600, now=utcnow()).encoded)
    assert without[A + "PrincipalTag:mfa"] == ["false"]
    assert A + "TransitiveTagKeys" in without and without[A + "TransitiveTagKeys"] == ["Department"]


def test_the_id_token_carries_the_mfa_tag(live_broker: Callable[..., LiveBroker], key_files: KeyFilesOnDisk):
    broker = live_broker(keys=key_files.section(), session_tags=WITH_MFA.model_dump())
    proved = stepped_up(ALICE, method="otp", at=utcnow().timestamp())
    claims = _verify(broker, _issuer(broker).id_token(identity=proved, audience="sts.amazonaws.com", now=utcnow()))
    assert claims["https://aws.amazon.com/tags"]["principal_tags"]["mfa"] == ["true"]
    plain = _verify(broker, _issuer(broker).id_token(identity=ALICE, audience="sts.amazonaws.com", now=utcnow()))
    assert plain["https://aws.amazon.com/tags"]["principal_tags"]["mfa"] == ["false"]


def test_the_mfa_tag_counts_toward_the_50_and_is_a_valid_unique_key():
    fifty = [{"key": f"k{i}", "attribute": f"a{i}"} for i in range(50)]
    with pytest.raises(ValidationError, match="at most 50"):
        SessionTagsConfig.model_validate({"tags": fifty, "mfa_tag": "mfa"})
    with pytest.raises(ValidationError, match="twice"):
        SessionTagsConfig.model_validate({"tags": [{"key": "MFA", "attribute": "x"}], "mfa_tag": "mfa"})
    with pytest.raises(ValidationError, match="reserved"):
        SessionTagsConfig.model_validate({"mfa_tag": "aws:mfa"})
    only = TagPolicy(SessionTagsConfig.model_validate({"mfa_tag": "mfa"}))
    assert only.tags_for(ALICE).tags == (("mfa", "false"),)
