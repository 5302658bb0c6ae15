#!/usr/bin/env bash
# The main job on the embedded default data: train conv_vae (tiny preset) on the bundled digits
# in PyTorch and in Keras, export both checkpoints to ONNX (each through its own framework's
# exporter), and generate a sample grid and a variations grid with the onnxruntime runtime.
set -euo pipefail
OUT=${DEMO_OUT:-demo_out}
TORCH_EPOCHS=${TORCH_EPOCHS:-18}
KERAS_EPOCHS=${KERAS_EPOCHS:-10}
export TF_CPP_MIN_LOG_LEVEL=3
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)

echo "== training conv_vae (tiny) in PyTorch: $TORCH_EPOCHS epochs on the embedded digits"
python -m torch_impl.train --model conv_vae --preset tiny --data digits --epochs "$TORCH_EPOCHS" \
    --batch-size 32 --out "$OUT/run_torch"
echo "== training conv_vae (tiny) in Keras: $KERAS_EPOCHS epochs on the embedded digits"
python -m keras_impl.train --model conv_vae --preset tiny --data digits --epochs "$KERAS_EPOCHS" \
    --batch-size 32 --out "$OUT/run_keras"

echo "== exporting to ONNX (torch checkpoint via torch, keras checkpoint via keras)"
python -m export.onnx "$OUT/run_torch/checkpoint.safetensors" --out "$OUT/onnx_torch" --via torch --log-level WARNING
python -m export.onnx "$OUT/run_keras/checkpoint.safetensors" --out "$OUT/onnx_keras" --via keras --log-level WARNING

digit=$(python -c "from core.data import prepare_digits; print(prepare_digits(32) / '3' / '0003.png')")
for fw in torch keras; do
    echo "== runtime (onnxruntime only): $fw export"
    python -m runtime.generate "$OUT/onnx_$fw/decoder.onnx" --n 16 --seed 0 --out "$OUT/generated_$fw.png"
    python -m runtime.generate "$OUT/onnx_$fw" --variations "$digit" --n 10 --scale 0.01 --seed 0 \
        --out "$OUT/variations_$fw.png"
done

echo
echo "demo finished in $(( $(date +%s) - start ))s. Results:"
for f in run_torch/samples run_keras/samples run_torch/loss.png run_keras/loss.png onnx_torch onnx_keras \
         generated_torch.png generated_keras.png variations_torch.png variations_keras.png; do
    echo "  $OUT/$f"
done
echo "  TensorBoard: tensorboard --logdir $OUT"
