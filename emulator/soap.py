"""SOAP login() on /services/Soap/u/VER: the request parser and the response/fault bodies."""
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from emulator.faults import LOGIN_FAULTS

_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class LoginRequest:
    username: str
    password: str            # password and security token, concatenated as the client sends them


class SoapParseError(ValueError):
    """The body is not a SOAP login request."""


def parse_login(body):
    """The username and password(+token) of a partner-WSDL login body; raises SoapParseError."""
    text = _decode(body)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SoapParseError(str(exc)) from exc
    values = {}
    for element in root.iter():
        local = element.tag.rsplit("}", 1)[-1]
        if local in ("username", "password"):
            values[local] = element.text or ""
    if "username" not in values or "password" not in values:
        raise SoapParseError("No login element in the request body")
    return LoginRequest(values["username"], values["password"])


def _decode(body):
    # http.client sends a str body as ISO-8859-1; a client that encodes itself sends UTF-8.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


USER_TIME_ZONE = "Asia/Tokyo"    # every emulator user's time zone (login result, record pages)


def login_response(session_id, server_url, metadata_url, password_expired, user, org, session_seconds):
    """The 200 loginResponse body, with unprefixed sessionId/serverUrl as simple-salesforce parses them."""
    user_info = {
        "accessibilityMode": "false", "chatterExternal": "false", "currencySymbol": "¥",
        "orgAttachmentFileSizeLimit": "5242880", "orgDefaultCurrencyIsoCode": "JPY",
        "orgDefaultCurrencyLocale": "ja_JP", "orgDisallowHtmlAttachments": "false",
        "orgHasPersonAccounts": "true" if org.person_accounts else "false",
        "organizationId": org.org_id, "organizationMultiCurrency": "false",
        "organizationName": org.name, "profileId": "00e5g000000AbCdAAK",
        "sessionSecondsValid": str(session_seconds), "userEmail": user.get("Email") or "",
        "userFullName": user.get("Name") or "", "userId": user["Id"], "userLanguage": "ja",
        "userLocale": "ja_JP", "userName": user.get("Username") or "", "userTimeZone": USER_TIME_ZONE,
        "userType": "Standard", "userUiSkin": "Theme3",
    }
    info = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in user_info.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
        f"<metadataServerUrl>{escape(metadata_url)}</metadataServerUrl>"
        f"<passwordExpired>{'true' if password_expired else 'false'}</passwordExpired>"
        "<sandbox>false</sandbox>"
        f"<serverUrl>{escape(server_url)}</serverUrl>"
        f"<sessionId>{escape(session_id)}</sessionId>"
        f"<userId>{user['Id']}</userId>"
        f"<userInfo>{info}</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    ).encode("utf-8")


def login_fault(code):
    """The 500 SOAP fault body for a LOGIN_FAULTS code, with sf:exceptionCode/sf:exceptionMessage."""
    element, message = LOGIN_FAULTS[code]
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(code)}: {escape(message)}</faultstring>"
        f'<detail><sf:{element} xsi:type="sf:{element}"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:{element}></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode("utf-8")


def client_fault(message):
    """The 500 fault Salesforce gives for a body that is not a login request (no sf:exceptionCode)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:Client</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode("utf-8")
