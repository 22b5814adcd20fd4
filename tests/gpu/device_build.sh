#!/usr/bin/env bash
# Builds mixvae (library, CLI, all tests) against the CUDA LibTorch of the machine's PyTorch
# on a machine where Open MPI, HDF5, Boost, libpng, OpenSSL headers and GoogleTest cannot be
# installed (the project's lent GPU machine: Ubuntu, no package registry). Their Debian 12
# packages, fetched here with tests/gpu/fetch_debs.sh, are unpacked into a prefix; only the
# shared libraries whose soname the machine lacks are put on the library path, so nothing the
# machine already has (libssl, zlib, ...) is shadowed. GoogleTest is built from the Debian
# source package with the machine's compiler and LibTorch's C++ ABI.
#
#   tests/gpu/device_build.sh DEBS_DIR PREFIX BUILD_DIR
#   source PREFIX/env.sh      # mpirun, h5dump and the libraries, for running what was built
set -euo pipefail
debs=$(realpath "$1")
P=$(realpath -m "$2")
B=$(realpath -m "$3")
src=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc)

mkdir -p "$P/root" "$P/shim" "$P/bin"
for f in "$debs"/*.deb; do dpkg -x "$f" "$P/root"; done
R=$P/root/usr
A=$R/lib/x86_64-linux-gnu

# Development links that point at absolute paths (libz.so -> /lib/...) point into the prefix.
for l in "$A"/*.so; do
  t=$(readlink "$l" || true)
  [[ $t == /* ]] && ln -sfn "$P/root$t" "$l"
done
# Libraries the system lacks, by soname.
known=$(ldconfig -p | awk '{print $1}' | sort -u)
for f in "$A"/*.so.*; do
  n=$(basename "$f")
  grep -qxF "$n" <<<"$known" || ln -sf "$f" "$P/shim/$n"
done
ln -sf "$R/bin/orterun" "$P/bin/mpirun"
ln -sf "$R/bin/orterun" "$P/bin/mpiexec"
ln -sf "$R/bin/h5dump" "$P/bin/h5dump"

cat >"$P/env.sh" <<EOF
export OPAL_PREFIX=$R
export PATH=$P/bin:\$PATH
export LD_LIBRARY_PATH=$P/shim:$A/openmpi/lib:$A/hdf5/serial\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
# Shared memory and TCP only: no UCX/verbs probing in a VM, no cross-memory attach.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_osc=pt2pt OMPI_MCA_btl_base_warn_component_unused=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
EOF
# shellcheck disable=SC1091
source "$P/env.sh"

py=${PYTHON:-python3}
torch_cmake=${TORCH_CMAKE:-$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')}
abi=${TORCH_ABI:-$($py -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')}
nccl_dir=${NCCL_DIR-$($py -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)}
echo "device_build: LibTorch $torch_cmake (C++11 ABI $abi), NCCL ${nccl_dir:-none}, $(c++ --version | head -1)"

# GoogleTest from source (a prebuilt libgtest.a from another compiler is what the first GPU
# session suspected of its crashing tests).
cmake -S "$R/src/googletest" -B "$P/gtest-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
  -DCMAKE_INSTALL_PREFIX="$P/gtest" -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$abi" >"$P/gtest.log"
ninja -C "$P/gtest-build" install >>"$P/gtest.log"

nccl_args=()
[[ -n $nccl_dir ]] && nccl_args=(-DNCCL_ROOT="$nccl_dir" -DMIXVAE_WITH_NCCL=ON)
cmake -S "$src" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$P/gtest;$R;$torch_cmake" \
  -DHDF5_ROOT="$R" -DHDF5_C_INCLUDE_DIR="$R/include/hdf5/serial" \
  -DHDF5_hdf5_LIBRARY_RELEASE="$A/hdf5/serial/libhdf5.so" -DHDF5_hdf5_LIBRARY_DEBUG="$A/hdf5/serial/libhdf5.so" \
  -DBoost_ROOT="$R" -DBoost_NO_SYSTEM_PATHS=ON \
  -DMPI_C_HEADER_DIR="$A/openmpi/include" -DMPI_C_LIB_NAMES=mpi -DMPI_mpi_LIBRARY="$A/openmpi/lib/libmpi.so" \
  -DMPIEXEC_EXECUTABLE="$P/bin/mpirun" "${nccl_args[@]}"
# -k 0: one run shows every file that does not compile against this LibTorch.
[[ ${CONFIGURE_ONLY:-0} == 1 ]] || ninja -C "$B" -j"$jobs" -k 0
