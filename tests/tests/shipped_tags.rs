//! The tag lists shipped for plain Envoy and for Istio name exactly the tags
//! the filter emits, with the regex Istio generates, so they cannot drift.

use canary_core::metrics::{tag_regex, TAGS};
use canary_e2e::paths::repo_root;

#[test]
fn the_envoy_stats_config_has_one_regex_per_filter_tag() {
    let text =
        std::fs::read_to_string(repo_root().join("manifests/envoy/stats-config.yaml")).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- tag_name: "))
        .collect();
    assert_eq!(names, TAGS);
    for tag in TAGS {
        assert!(
            text.contains(&format!("regex: '{}'", tag_regex(tag))),
            "{tag}"
        );
    }
}

#[test]
fn the_istio_extra_stat_tags_name_every_filter_tag() {
    let text =
        std::fs::read_to_string(repo_root().join("manifests/istio/extra-stat-tags.yaml")).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("extraStatTags:"))
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .collect();
    assert_eq!(listed, TAGS);
    assert!(text.contains(&format!(
        "sidecar.istio.io/extraStatTags: {}",
        TAGS.join(",")
    )));
}
