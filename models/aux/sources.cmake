# models/aux: auxiliary models. dlib (Debian libdlib-dev) provides the HOG face detector and the 68-point shape
# predictor; aux/dlib_landmarks.cpp is the only translation unit that includes dlib headers, and it skips the torch
# precompiled header (dlib and torch headers need not share a translation unit).
list(APPEND FACETEX_MODELS_SOURCES aux/dlib_landmarks.cpp)
if(NOT TARGET PkgConfig::DLIB)  # FACETEX_STATIC_DEPS defines it
  pkg_check_modules(DLIB REQUIRED IMPORTED_TARGET dlib-1)
endif()
list(APPEND FACETEX_MODELS_DEPS PkgConfig::DLIB)
# dlib.pc lists BLAS/LAPACK/libpng/libjpeg as bare paths, which the imported target turns into link *options*
# (placed before the objects, so the linker drops them); dlib's headers call LAPACK (dgesvd_) from our code, so
# link them as libraries too.
list(APPEND FACETEX_MODELS_DEPS ${DLIB_LDFLAGS_OTHER})
set_source_files_properties(aux/dlib_landmarks.cpp PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
# The frozen networks of the paper's `background = generated` branch (DFR, RigNet, Deep3DFaceRecon's ReconNet,
# facenet_pytorch's MTCNN), loading state dicts converted by `facetex convert torch-state-dict`.
list(APPEND FACETEX_MODELS_SOURCES
  aux/frozen_layers.cpp aux/weight_group.cpp aux/dfr_model.cpp aux/rig_net.cpp aux/recon_net.cpp
  aux/mtcnn_nets.cpp aux/mtcnn_boxes.cpp aux/area_crops.cpp aux/mtcnn.cpp aux/aux_factory.cpp)
# dlib's face-recognition ResNet in LibTorch (weights from face-api's tfjs files) and dlib's face-chip extraction
# (dlib_face_chip.cpp is a dlib translation unit, so it skips the torch precompiled header too).
list(APPEND FACETEX_MODELS_SOURCES aux/dlib_face_resnet.cpp aux/dlib_face_chip.cpp aux/light_cnn.cpp)
set_source_files_properties(aux/dlib_face_chip.cpp PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
