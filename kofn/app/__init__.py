"""The applications built on the core, training, codegen and simulation: the ``kofn``
command line (:mod:`.cli`), the flow pipeline (:mod:`.flow`), its typed report
(:mod:`.report`) and writers, ``compare``, ``explore``, and the interop with hls4ml and
ONNX (:mod:`.export`, :mod:`.onnx_import`)."""
