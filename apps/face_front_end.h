// The face model and landmark source of the commands that fit faces to images (`data annotate`, `reconstruct`),
// read from one config section the same way for both: <section>.model / model_seed / model_grid (the face model),
// .landmarks / .predictor / .upsample (where the 68 landmarks come from), resolved against the assets folder.
#pragma once

#include <string>

#include "core/config.h"
#include "train/annotate.h"

namespace facetex::app {

struct FaceFrontEnd {
  train::ModelChoice model;
  train::LandmarkProvider landmarks;
};

// `model_spec`: the resolved --model ("canonical", "synthetic", "MAT:UV"; annotate resolves its "auto" first).
FaceFrontEnd face_front_end(const Config& c, const std::string& section, const std::string& model_spec,
                            const std::string& assets);

}  // namespace facetex::app
