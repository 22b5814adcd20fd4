#!/usr/bin/env bash
# Fetches (here, on Debian 12) the .deb files that tests/gpu/device_build.sh unpacks on a
# machine without these packages: Open MPI, HDF5 (+ h5dump), Boost.Program_options, libpng,
# zlib and OpenSSL headers, nlohmann-json, GoogleTest's sources, and the shared libraries
# they need that an Ubuntu/CUDA image may lack (about 35 MB in all).
#
#   tests/gpu/fetch_debs.sh [DIR]      (default .devdeps, ignored by git via .git/info/exclude)
set -euo pipefail
dir="${1:-.devdeps}"
mkdir -p "$dir"
cd "$dir"
apt-get download \
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 \
  libpmix2 libfabric1 libucx0 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 \
  libnuma1 libmunge2 libxnvctrl0 libpciaccess0 libltdl7 libgfortran5 \
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libsz2 libaec0 libaec-dev hdf5-tools \
  libcurl3-gnutls libnghttp2-14 librtmp1 libssh2-1 libpsl5 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 \
  libldap-2.5-0 libsasl2-2 libsasl2-modules-db libdb5.3 libgnutls30 libnettle8 libhogweed6 libidn2-0 libunistring2 \
  libtasn1-6 libp11-kit0 libbrotli1 libkeyutils1 libcom-err2 libgmp10 libffi8 \
  libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0 \
  libpng-dev libpng16-16 zlib1g zlib1g-dev libssl3 libssl-dev nlohmann-json3-dev libnanoflann-dev googletest
du -sh .
