"""bci.config: the key checks every configuration file goes through name the key, what was
expected and what was found."""

from __future__ import annotations

import pytest

from bci.config import REQUIRED, check, check_range, load_toml, no_unknown, validate
from bci.errors import BCIError, ConfigError


def test_values_of_the_right_type_come_back_converted():
    t = {"n": 3, "x": 2, "flag": False, "names": ["a", "b"], "freqs": [8, 10.5]}
    assert check(t, "n", int, "w") == 3
    x = check(t, "x", float, "w")
    assert x == 2.0 and isinstance(x, float)  # a TOML integer is a number
    assert check(t, "flag", bool, "w") is False
    assert check(t, "names", list, "w", items=str, min_items=2) == ["a", "b"]
    freqs = check(t, "freqs", list, "w", items=float)
    assert freqs == [8.0, 10.5] and all(isinstance(f, float) for f in freqs)
    assert check(t, "absent", float, "w", 0.5) == 0.5  # the default, unchecked
    assert check(t, "absent", str, "w", None) is None


@pytest.mark.parametrize(("table", "kwargs", "match"), [
    ({"k": "1s"}, {"types": float}, r"^w\.k: expected a number, found '1s'$"),
    ({"k": True}, {"types": int}, r"^w\.k: expected an integer, found True$"),
    ({"k": 1.5}, {"types": int}, r"^w\.k: expected an integer, found 1\.5$"),
    ({"k": float("nan")}, {"types": float}, r"^w\.k: expected a number, found nan$"),
    ({"k": float("inf")}, {"types": float}, r"^w\.k: expected a number, found inf$"),
    ({}, {"types": str}, r"^w\.k: required, expected a string, found nothing$"),
    ({"k": "x"}, {"types": str, "choices": ("a", "b")},
     r"^w\.k: expected one of \['a', 'b'\], found 'x'$"),
    ({"k": -1}, {"types": float, "above": 0}, r"^w\.k: expected a positive number, found -1"),
    ({"k": 0}, {"types": int, "at_least": 1}, r"^w\.k: expected an integer ≥ 1, found 0$"),
    ({"k": 1.0}, {"types": float, "above": 0, "below": 1},
     r"^w\.k: expected a number > 0 and < 1, found 1\.0$"),
    ({"k": [1, "x"]}, {"types": list, "items": float},
     r"^w\.k: expected a list of numbers, found \[1, 'x'\]$"),
    ({"k": []}, {"types": list, "items": str, "min_items": 1},
     r"^w\.k: expected a list of strings with at least 1 item, found \[\]$"),
])
def test_a_bad_value_names_key_expected_and_found(table, kwargs, match):
    types = kwargs.pop("types")
    with pytest.raises(ConfigError, match=match) as err:
        check(table, "k", types, "w", **kwargs)
    assert isinstance(err.value, BCIError)


def test_key_names_at_the_top_and_in_lists():
    with pytest.raises(ConfigError, match=r"^rounds: expected an integer"):
        check({"rounds": "8"}, "rounds", int, "")
    with pytest.raises(ConfigError, match=r"^site\[0\]\.name: required"):
        check({}, "name", str, "site[0]", REQUIRED)
    with pytest.raises(ConfigError, match=r"^x: expected a number ≤ 2, found 3\.5$"):
        check_range(3.5, "x", at_most=2)
    with pytest.raises(ConfigError, match=r"^n: expected an integer ≥ 0 and ≤ 9, found 10$"):
        check_range(10, "n", at_least=0, at_most=9)


def test_unknown_keys_list_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"^source\.strem: unknown key \(did you mean "
                                          r"'stream'\?\); expected one of \['stream', 'type'\]$"):
        no_unknown({"strem": "amp"}, {"stream", "type"}, "source")
    with pytest.raises(ConfigError, match=r"^top level: unknown keys \['a', 'zz'\]; expected "
                                          r"keys among \['stream'\]$"):
        no_unknown({"zz": 1, "a": 2, "stream": 3}, {"stream"}, "")
    no_unknown({"stream": 1}, {"stream", "type"}, "source")  # known keys pass


def test_validate_by_example():
    schema = {"trial": {"imagery": 4.0, "classes": ["left"]}, "seed": 0, "options": {}}
    out = validate({"trial": {"imagery": 3}, "options": {"any": "table"}}, schema)
    assert out == {"trial": {"imagery": 3.0, "classes": ["left"]}, "seed": 0,
                   "options": {"any": "table"}}
    assert schema["trial"]["imagery"] == 4.0  # the schema is not modified
    with pytest.raises(ConfigError, match=r"^trial\.imagery: expected a number, found 'long'$"):
        validate({"trial": {"imagery": "long"}}, schema)
    with pytest.raises(ConfigError, match=r"^trial\.classes\[1\]: expected a string, found 2$"):
        validate({"trial": {"classes": ["a", 2]}}, schema)
    with pytest.raises(ConfigError, match=r"^trial: expected a table \[trial\], found 3$"):
        validate({"trial": 3}, schema)
    with pytest.raises(ConfigError, match=r"^trial\.imagry: unknown key \(did you mean "
                                          r"'imagery'\?\)"):
        validate({"trial": {"imagry": 1.0}}, schema)
    with pytest.raises(ConfigError, match=r"^seed: expected an integer, found True$"):
        validate({"seed": True}, schema)


def test_load_toml_names_the_file_and_the_line(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[a]\nb = 1\n')
    assert load_toml(good) == {"a": {"b": 1}}
    with pytest.raises(ConfigError, match=r"^session file .*nope\.toml does not exist$"):
        load_toml(tmp_path / "nope.toml", what="session file")
    bad = tmp_path / "bad.toml"
    bad.write_text('[a]\nb = 1\nc = \n')
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML: .*line 3"):
        load_toml(bad)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('a = "é"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.toml: not valid TOML: .*utf-8"):
        load_toml(latin)
