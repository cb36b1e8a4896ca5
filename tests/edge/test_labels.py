import pytest

from cxr_edge.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS, UnknownLabelError, label_from_folder


def test_label_order_is_the_contract():
    assert LABELS == ("normal", "lung_opacity", "viral_pneumonia", "covid19")
    assert STAGE1_LABELS == ("normal", "abnormal")
    assert STAGE2_LABELS == ("lung_opacity", "viral_pneumonia", "covid19")


@pytest.mark.parametrize("name, label", [
    ("Normal", "normal"), ("NORMAL", "normal"), ("Lung_Opacity", "lung_opacity"),
    ("lung opacity", "lung_opacity"), ("Lung-Opacity", "lung_opacity"), ("Viral Pneumonia", "viral_pneumonia"),
    ("viral_pneumonia", "viral_pneumonia"), ("COVID", "covid19"), ("covid19", "covid19"), ("COVID-19", "covid19"),
])
def test_folder_names_map_case_and_separator_insensitively(name, label):
    assert label_from_folder(name) == label


def test_unknown_folder_names_the_folder_and_the_accepted_names():
    with pytest.raises(UnknownLabelError) as info:
        label_from_folder("Tuberculosis")
    message = str(info.value)
    assert "'Tuberculosis'" in message
    for accepted in ("'Normal'", "'Viral Pneumonia'", "'COVID'", "'covid19'"):
        assert accepted in message
