#!/usr/bin/env bash
# Builds a self-contained prefix of static libraries so that the WHOLE facetex (trainer, reconstruct, benches, tests)
# can be built on the GPU machine, which has a CUDA LibTorch, nvcc, NCCL, Open MPI and zlib but none of the Debian
# -dev packages facetex uses and no network.
#
#   scripts/gpu_check/build_deps.sh [PREFIX]     (default ~/.cache/facetex-gpu-deps/prefix; about 20 min on 2 cores
#                                                 the first time) -> build-gpu/prefix.tar.xz, which the device run
#                                                 carries (scripts/gpu_check/run_full.sh unpacks it there)
#
# What goes in, and why this way:
#   - OpenCV core/imgproc/imgcodecs, dlib, libzip: built here from Debian bookworm's source tarballs (the same
#     versions as the CPU build) as static libraries with every optional dependency off, because Debian ships no
#     static imgproc/imgcodecs/libzip and its libdlib.a needs BLAS/LAPACK/libgfortran. dlib is built without BLAS,
#     LAPACK and image codecs (facetex loads images with OpenCV); its headers come from the same build, so the
#     config.h the compiler sees matches the library (dlib checks this at link time).
#   - HDF5, libaec/szip, matio, libpng, libjpeg, libdeflate: Debian's own static archives (they link without curl:
#     the ROS3 driver object is never pulled in).
#   - fmt, spdlog, nlohmann-json, CLI11, toml++: header-only; GoogleTest: sources.
# cmake/FacetexStaticDeps.cmake turns the prefix into the same targets cmake/FacetexDependencies.cmake finds on
# Debian (configure with -DFACETEX_STATIC_DEPS=PREFIX). The static archives are compiled by Debian's gcc 12 with the
# C++11 string ABI, which the GPU machine's gcc and LibTorch 2.x use too.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${FACETEX_DEPS_CACHE:-$HOME/.cache/facetex-gpu-deps}
PREFIX=$(realpath -m "${1:-$CACHE/prefix}")
JOBS=$(getconf _NPROCESSORS_ONLN)
POOL=http://deb.debian.org/debian/pool/main
mkdir -p "$CACHE" "$PREFIX/include" "$PREFIX/lib"
MA=/usr/lib/x86_64-linux-gnu

# name  url-path  sha256
fetch() {
  local file=$CACHE/$(basename "$2")
  if [ ! -f "$file" ]; then
    echo "fetching $1"
    curl -sfL -o "$file.part" "$POOL/$2" || { echo "build_deps: cannot download $POOL/$2" >&2; exit 1; }
    mv "$file.part" "$file"
  fi
  echo "$3  $file" | sha256sum -c --quiet - || { echo "build_deps: checksum mismatch for $file" >&2; exit 1; }
  printf '%s' "$file"
}

# Builds one CMake project from a tarball into $PREFIX unless its stamp exists.
build_cmake() {  # name tarball source-subdir cmake-args...
  local name=$1 tarball=$2 sub=$3; shift 3
  [ -f "$PREFIX/.built-$name" ] && { echo "$name: already built"; return; }
  local src=$CACHE/src-$name bld=$CACHE/build-$name
  rm -rf "$src" "$bld" && mkdir -p "$src"
  tar -xf "$tarball" -C "$src" --strip-components=1
  echo "building $name ($JOBS jobs)"
  local t0=$(date +%s)
  cmake -S "$src/$sub" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON "$@" >"$CACHE/$name.configure.log" 2>&1 ||
    { tail -30 "$CACHE/$name.configure.log"; exit 1; }
  ninja -C "$bld" -j "$JOBS" install >"$CACHE/$name.build.log" 2>&1 || { grep -A5 error "$CACHE/$name.build.log" | head -40; exit 1; }
  touch "$PREFIX/.built-$name"
  echo "$name: built in $(($(date +%s) - t0)) s"
}

OPENCV=$(fetch opencv o/opencv/opencv_4.6.0+dfsg.orig.tar.xz \
  40a59ba7e5c18a43652de0a08733c9843a39bba619b1f3e26a5fac4a6f041423)
DLIB=$(fetch dlib d/dlib/dlib_19.24+dfsg.orig.tar.bz2 \
  66b4263822a2ff91a3e769e501c7d7927a13089e178c1427ec19cb0475823cf6)
LIBZIP=$(fetch libzip libz/libzip/libzip_1.7.3.orig.tar.xz \
  a60473ffdb7b4260c08bfa19c2ccea0438edac11193c3afbbb1f17fbcf6c6132)

# Debian's static C libraries and their headers (the CPU build's exact versions).
for a in libhdf5_serial.a libsz.a libaec.a libmatio.a libpng16.a libjpeg.a libdeflate.a libz.a; do
  cp "$MA/$a" "$PREFIX/lib/"
done
cp /usr/include/hdf5/serial/*.h "$PREFIX/include/"
cp /usr/include/matio.h /usr/include/matio_pubconf.h /usr/include/libdeflate.h /usr/include/zlib.h \
   /usr/include/zconf.h /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/jpeglib.h \
   /usr/include/jerror.h /usr/include/jmorecfg.h "$PREFIX/include/"
cp /usr/include/x86_64-linux-gnu/jconfig.h "$PREFIX/include/"
# Header-only libraries and the GoogleTest sources.
cp -r /usr/include/fmt /usr/include/spdlog /usr/include/nlohmann /usr/include/CLI /usr/include/toml++ "$PREFIX/include/"
rm -rf "$PREFIX/googletest" && cp -r /usr/src/googletest "$PREFIX/googletest"

build_cmake libzip "$LIBZIP" . -DENABLE_BZIP2=OFF -DENABLE_LZMA=OFF -DENABLE_COMMONCRYPTO=OFF -DENABLE_GNUTLS=OFF \
  -DENABLE_MBEDTLS=OFF -DENABLE_OPENSSL=OFF -DENABLE_WINDOWS_CRYPTO=OFF -DBUILD_TOOLS=OFF -DBUILD_REGRESS=OFF \
  -DBUILD_EXAMPLES=OFF -DBUILD_DOC=OFF -DZLIB_INCLUDE_DIR=/usr/include -DZLIB_LIBRARY="$MA/libz.a"
build_cmake dlib "$DLIB" dlib -DDLIB_NO_GUI_SUPPORT=ON -DDLIB_USE_BLAS=OFF -DDLIB_USE_LAPACK=OFF -DDLIB_USE_CUDA=OFF \
  -DDLIB_PNG_SUPPORT=OFF -DDLIB_JPEG_SUPPORT=OFF -DDLIB_GIF_SUPPORT=OFF -DDLIB_WEBP_SUPPORT=OFF \
  -DDLIB_USE_MKL_FFT=OFF -DDLIB_USE_FFTW=OFF -DDLIB_LINK_WITH_SQLITE3=OFF
build_cmake opencv "$OPENCV" . -DBUILD_LIST=core,imgproc,imgcodecs -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF \
  -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF -DBUILD_opencv_python3=OFF -DBUILD_JAVA=OFF -DWITH_IPP=OFF \
  -DWITH_ITT=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF -DWITH_OPENCL=OFF -DWITH_CUDA=OFF -DWITH_LAPACK=OFF \
  -DWITH_EIGEN=OFF -DWITH_PROTOBUF=OFF -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENEXR=OFF -DWITH_JASPER=OFF \
  -DWITH_OPENJPEG=OFF -DWITH_GDAL=OFF -DWITH_GDCM=OFF -DWITH_IMGCODEC_HDR=OFF -DWITH_IMGCODEC_SUNRASTER=OFF \
  -DWITH_IMGCODEC_PXM=OFF -DWITH_IMGCODEC_PFM=OFF -DWITH_QUIRC=OFF -DWITH_ADE=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF \
  -DWITH_1394=OFF -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_GTK=OFF -DWITH_QT=OFF \
  -DBUILD_ZLIB=OFF -DBUILD_PNG=OFF -DBUILD_JPEG=OFF -DWITH_PNG=ON -DWITH_JPEG=ON \
  -DZLIB_LIBRARY="$MA/libz.a" -DPNG_LIBRARY="$MA/libpng16.a" -DJPEG_LIBRARY="$MA/libjpeg.a" \
  -DOPENCV_GENERATE_PKGCONFIG=OFF -DINSTALL_C_EXAMPLES=OFF -DOPENCV_ENABLE_NONFREE=OFF
# OpenCV puts its headers under include/opencv4 (FacetexStaticDeps.cmake knows).
du -sh "$PREFIX"
mkdir -p build-gpu
tar -cJf build-gpu/prefix.tar.xz.part -C "$PREFIX" . && mv build-gpu/prefix.tar.xz.part build-gpu/prefix.tar.xz
ls -la build-gpu/prefix.tar.xz
