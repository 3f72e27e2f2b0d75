import pytest

from dicomrst.dicomweb.uids import InvalidUID, checked_uid, is_valid_uid


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2", "1", "1.2.3." + "4" * 58])
def test_valid(uid):
    assert is_valid_uid(uid)


@pytest.mark.parametrize("uid", ["", "1..2", ".1", "1.", "1.2.a", "../etc", "1/2", "1.2.3." + "4" * 59, "1 2", "1.2\n"])
def test_invalid(uid):
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUID, match="Study Instance UID"):
        checked_uid(uid, "Study Instance UID")
