"""OpenVINO networks fed 8-bit images: the conversion a network expects, done inside its graph."""

from __future__ import annotations


def uint8_bgr_input(model, scale: float, mean: float | None = None, rgb: bool = False):
    """`model` (NCHW float input) taking uint8 NHWC BGR batches instead: converted to float,
    to RGB when `rgb`, less `mean`, divided by `scale`, in the compiled graph (cheaper than
    doing it in numpy before every inference)."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    tensor = ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    if rgb:
        tensor.set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    if rgb:
        steps.convert_color(ColorFormat.RGB)
    if mean is not None:
        steps.mean(mean)
    steps.scale(scale)
    return ppp.build()
