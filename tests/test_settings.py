import pickle

import pytest

from aep_io import ConfigurationError, Secret, Settings

BASE = {"AEP_CLIENT_ID": "cid", "AEP_ORG_ID": "ORG@AdobeOrg", "AEP_CLIENT_SECRET": "s3cr3t-value"}


def test_from_env_reads_every_variable() -> None:
    env = {
        **BASE,
        "AEP_SANDBOX": "dev",
        "AEP_SCOPES": "openid, AdobeID",
        "AEP_PLATFORM_URL": "http://127.0.0.1:9/",
        "AEP_IMS_URL": "http://127.0.0.1:9",
        "AEP_TIMEOUT": "5",
    }
    s = Settings.from_env(env)
    assert (s.client_id, s.org_id, s.sandbox) == ("cid", "ORG@AdobeOrg", "dev")
    assert s.scopes == ("openid", "AdobeID")
    assert s.platform_url == "http://127.0.0.1:9"
    assert s.timeout == 5.0
    assert s.client_secret == Secret("s3cr3t-value")
    assert s.uses_oauth


def test_defaults_are_aep_production() -> None:
    s = Settings.from_env(BASE)
    assert s.sandbox == "prod"
    assert s.platform_url == "https://platform.adobe.io"
    assert s.ims_url == "https://ims-na1.adobelogin.com"


def test_arguments_win_over_environment() -> None:
    assert Settings.from_env(BASE, sandbox="other").sandbox == "other"


@pytest.mark.parametrize(
    ("missing", "named"),
    [("AEP_CLIENT_ID", "AEP_CLIENT_ID"), ("AEP_ORG_ID", "AEP_ORG_ID"),
     ("AEP_CLIENT_SECRET", "AEP_CLIENT_SECRET")],
)
def test_missing_setting_names_the_variable(missing: str, named: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(env)


def test_static_token_replaces_the_secret() -> None:
    env = {k: v for k, v in BASE.items() if k != "AEP_CLIENT_SECRET"}
    s = Settings.from_env({**env, "AEP_ACCESS_TOKEN": "tok-123"})
    assert not s.uses_oauth


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [("AEP_PLATFORM_URL", "platform.adobe.io", "not an http"),
     ("AEP_TIMEOUT", "soon", "AEP_TIMEOUT"),
     ("AEP_SANDBOX", "Prod", "lower case")],
)
def test_invalid_values_are_explained(var: str, value: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Settings.from_env({**BASE, var: value})


def test_secrets_never_show() -> None:
    s = Settings.from_env({**BASE, "AEP_ACCESS_TOKEN": "tok-123"})
    for text in (repr(s), str(s), f"{s}", repr(s.client_secret), f"{s.access_token}"):
        assert "s3cr3t-value" not in text
        assert "tok-123" not in text
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s
    assert clone.client_secret is not None and clone.client_secret.reveal() == "s3cr3t-value"


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(TypeError, match="sandbx"):
        Settings.from_env(BASE, sandbx="x")
