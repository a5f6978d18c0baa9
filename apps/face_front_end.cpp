#include "apps/face_front_end.h"

#include <filesystem>

#include "apps/cli.h"

namespace facetex::app {

FaceFrontEnd face_front_end(const Config& c, const std::string& section, const std::string& model_spec,
                            const std::string& assets) {
  const auto key = [&](const char* name) { return section + "." + name; };
  FaceFrontEnd f;
  f.model = train::load_model_choice(model_spec, c.get_uint(key("model_seed"), 0),
                                     static_cast<int>(c.get_int(key("model_grid"), 40)), assets);
  models::aux::DetectorOptions detector;
  detector.upsample = static_cast<int>(c.get_int(key("upsample"), 1));
  const std::string predictor =
      c.get_string(key("predictor"), (std::filesystem::path(assets) / kShapePredictorInAssets).string());
  f.landmarks =
      train::landmark_provider_choice(c.get_string(key("landmarks"), "dlib"), f.model.model, predictor, detector);
  return f;
}

}  // namespace facetex::app
