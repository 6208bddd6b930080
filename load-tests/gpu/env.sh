# Sourced by run.sh on the GPU machine (load-tests/README.md): ONNX Runtime's CUDA build from
# /opt/ort-gpu (shared/tools/gpu-pack.sh) and the CUDA 13 / cuDNN libraries of the Python nvidia-* packages.
nv=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')
export ORT_DYLIB_PATH=/opt/ort-gpu/lib/libonnxruntime.so.1.31.1
export LD_LIBRARY_PATH="/opt/ort-gpu/lib:$nv/cu13/lib:$nv/cudnn/lib:$nv/nccl/lib:${LD_LIBRARY_PATH:-}"
