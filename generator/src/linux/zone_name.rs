//! Readable, stable zone names for cgroups, from the cgroup path alone.
//!
//! Owns the rules that turn `/kubepods.slice/kubepods-burstable.slice/
//! kubepods-burstable-pod1f0e_..._.slice/cri-containerd-3f2a....scope` into
//! `k8s/1f0e-.../3f2a1b4c5d6e`, and what kind of zone a path is. Pure functions of the path:
//! the same path gives the same name on every host and in every run. Must not read files
//! (the caller knows the path; tests feed paths of every shape the runtimes document).
//!
//! | kind | path shapes (systemd driver / cgroupfs driver) | zone name |
//! |---|---|---|
//! | `kubernetes` | `.../kubepods-<qos>-pod<UID>.slice/<runtime>-<ID>.scope`, `/kubepods/<qos>/pod<UID>/<ID>` | `k8s/<UID>/<ID:12>` |
//! | `docker` | `.../docker-<ID>.scope`, `/docker/<ID>` | `docker/<ID:12>` |
//! | `podman` | `.../libpod-<ID>.scope` (`libpod-conmon-<ID>.scope`: its monitor) | `podman/<ID:12>` (`podman/<ID:12>/conmon`) |
//! | `containerd` | `.../cri-containerd-<ID>.scope`, `.../nerdctl-<ID>.scope`, `crio-<ID>.scope` outside `kubepods` | `containerd/<ID:12>` |
//! | `container` | any other `/<parent>/<ID>` with a 64-hex `<ID>` | `<parent>/<ID:12>` |
//! | `systemd` | `.../<unit>.service`, `.scope`, `.slice`, ... (under `user@UID.service`: that prefix kept) | `<unit>` or `user@UID.service/<unit>` |
//! | `cgroup` | anything else | the path without its leading `/` |
//!
//! Below a container's own cgroup (a container running systemd), the rest of the path is
//! appended: `docker/3f2a1b4c5d6e/system.slice/cron.service`.

/// What a zone is, from its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneIdentity {
    /// The zone name frames carry.
    pub name: String,
    /// `kubernetes`, `docker`, `podman`, `containerd`, `container`, `systemd` or `cgroup`.
    pub kind: &'static str,
    /// The full container id (64 hex digits), where the path holds one.
    pub container_id: Option<String>,
    /// The Kubernetes pod UID (with dashes), where the path holds one.
    pub pod_uid: Option<String>,
}

const SYSTEMD_UNIT_SUFFIXES: &[&str] = &[".service", ".scope", ".slice", ".mount", ".socket", ".swap"];

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The container id of one path component and the runtime its form names: `docker-<ID>.scope`,
/// `libpod-<ID>.scope`, `cri-containerd-<ID>.scope`, `crio-<ID>.scope`, a bare `<ID>`.
fn container_component(c: &str) -> Option<(&'static str, &str, bool)> {
    let unit = c.strip_suffix(".scope").unwrap_or(c);
    for (prefix, runtime, monitor) in [
        ("docker-", "docker", false),
        ("libpod-conmon-", "podman", true),
        ("libpod-", "podman", false),
        ("cri-containerd-", "containerd", false),
        ("nerdctl-", "containerd", false),
        ("crio-conmon-", "crio", true),
        ("crio-", "crio", false),
    ] {
        if let Some(id) = unit.strip_prefix(prefix).filter(|id| is_container_id(id)) {
            return Some((runtime, id, monitor));
        }
    }
    is_container_id(c).then_some(("", c, false))
}

/// The pod UID of a Kubernetes pod cgroup: `pod<UID>` (cgroupfs) or
/// `kubepods[-<qos>]-pod<UID with _ for ->.slice` (systemd).
fn pod_uid(c: &str) -> Option<String> {
    let uid = if let Some(slice) = c.strip_suffix(".slice") {
        slice.rsplit_once("-pod").filter(|(head, _)| head.starts_with("kubepods")).map(|(_, uid)| uid.replace('_', "-"))?
    } else {
        c.strip_prefix("pod")?.to_owned()
    };
    (uid.len() >= 8 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
}

/// The identity of the cgroup at `path` (as `/proc/PID/cgroup` writes it, leading `/`).
pub fn identify(path: &str) -> ZoneIdentity {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let in_kubepods = parts.first().is_some_and(|c| c.starts_with("kubepods"));
    let pod = in_kubepods.then(|| parts.iter().find_map(|c| pod_uid(c))).flatten();
    // The outermost component naming a container: what is below it is inside the container.
    let container = parts.iter().enumerate().find_map(|(i, c)| container_component(c).map(|found| (i, found)));
    if let Some((i, (runtime, id, monitor))) = container {
        let rest = parts[i + 1..].join("/");
        let short = &id[..12];
        let (kind, head) = if let Some(uid) = &pod {
            ("kubernetes", format!("k8s/{uid}/{short}"))
        } else {
            match runtime {
                "docker" => ("docker", format!("docker/{short}")),
                "podman" => ("podman", format!("podman/{short}")),
                "containerd" | "crio" => ("containerd", format!("containerd/{short}")),
                _ if i > 0 && parts[i - 1] == "docker" => ("docker", format!("docker/{short}")),
                _ if i > 0 => ("container", format!("{}/{short}", parts[i - 1])),
                _ => ("container", short.to_owned()),
            }
        };
        let mut name = head;
        if monitor {
            name.push_str("/conmon");
        }
        if !rest.is_empty() {
            name.push('/');
            name.push_str(&rest);
        }
        return ZoneIdentity { name, kind, container_id: Some(id.to_owned()), pod_uid: pod };
    }
    if let Some(uid) = pod {
        // A pod's own cgroup (its sandbox, where a runtime puts it there).
        return ZoneIdentity { name: format!("k8s/{uid}"), kind: "kubernetes", container_id: None, pod_uid: Some(uid) };
    }
    if let Some(last) = parts.last().filter(|c| SYSTEMD_UNIT_SUFFIXES.iter().any(|s| c.ends_with(s) && c.len() > s.len())) {
        let manager = parts.iter().rev().skip(1).find(|c| c.starts_with("user@") && c.ends_with(".service"));
        let name = match manager {
            Some(m) => format!("{m}/{last}"),
            None => (*last).to_owned(),
        };
        return ZoneIdentity { name, kind: "systemd", container_id: None, pod_uid: None };
    }
    ZoneIdentity { name: parts.join("/"), kind: "cgroup", container_id: None, pod_uid: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";

    fn named(path: &str) -> (String, &'static str) {
        let z = identify(path);
        (z.name, z.kind)
    }

    #[test]
    fn docker_with_either_driver() {
        assert_eq!(named(&format!("/system.slice/docker-{ID}.scope")), ("docker/3f2a1b4c5d6e".into(), "docker"));
        assert_eq!(named(&format!("/docker/{ID}")), ("docker/3f2a1b4c5d6e".into(), "docker"));
        assert_eq!(identify(&format!("/docker/{ID}")).container_id.as_deref(), Some(ID));
    }

    #[test]
    fn kubernetes_with_the_systemd_and_cgroupfs_drivers() {
        let uid = "1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            uid.replace('-', "_")
        );
        let z = identify(&systemd);
        assert_eq!((z.name.as_str(), z.kind), (format!("k8s/{uid}/3f2a1b4c5d6e").as_str(), "kubernetes"));
        assert_eq!(z.pod_uid.as_deref(), Some(uid));
        assert_eq!(z.container_id.as_deref(), Some(ID));
        let cgroupfs = format!("/kubepods/besteffort/pod{uid}/{ID}");
        assert_eq!(identify(&cgroupfs).name, format!("k8s/{uid}/3f2a1b4c5d6e"));
        // Guaranteed pods sit directly under kubepods.
        let guaranteed = format!("/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope", uid.replace('-', "_"));
        assert_eq!(identify(&guaranteed).name, format!("k8s/{uid}/3f2a1b4c5d6e"));
        assert_eq!(named(&format!("/kubepods/pod{uid}")), (format!("k8s/{uid}"), "kubernetes"));
    }

    #[test]
    fn podman_containerd_and_other_runtimes() {
        assert_eq!(named(&format!("/machine.slice/libpod-{ID}.scope")), ("podman/3f2a1b4c5d6e".into(), "podman"));
        assert_eq!(
            named(&format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container")),
            ("podman/3f2a1b4c5d6e/container".into(), "podman")
        );
        assert_eq!(named(&format!("/machine.slice/libpod-conmon-{ID}.scope")), ("podman/3f2a1b4c5d6e/conmon".into(), "podman"));
        assert_eq!(named(&format!("/system.slice/cri-containerd-{ID}.scope")), ("containerd/3f2a1b4c5d6e".into(), "containerd"));
        assert_eq!(named(&format!("/default/{ID}")), ("default/3f2a1b4c5d6e".into(), "container"));
        assert_eq!(named(&format!("/lxc.payload/{ID}")), ("lxc.payload/3f2a1b4c5d6e".into(), "container"));
    }

    #[test]
    fn systemd_units_and_user_managers() {
        assert_eq!(named("/system.slice/nginx.service"), ("nginx.service".into(), "systemd"));
        assert_eq!(named("/system.slice/system-getty.slice/getty@tty1.service"), ("getty@tty1.service".into(), "systemd"));
        assert_eq!(named("/init.scope"), ("init.scope".into(), "systemd"));
        assert_eq!(named("/user.slice/user-1000.slice/session-3.scope"), ("session-3.scope".into(), "systemd"));
        assert_eq!(
            named("/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service"),
            ("user@1000.service/dbus.service".into(), "systemd")
        );
    }

    #[test]
    fn anything_else_keeps_its_path_and_nested_cgroups_keep_their_rest() {
        assert_eq!(named("/batch/job7"), ("batch/job7".into(), "cgroup"));
        assert_eq!(named("/.service"), (".service".into(), "cgroup"));
        assert_eq!(
            named(&format!("/system.slice/docker-{ID}.scope/system.slice/cron.service")),
            ("docker/3f2a1b4c5d6e/system.slice/cron.service".into(), "docker")
        );
        // Not an id: 63 digits, upper case.
        assert_eq!(named(&format!("/docker/{}", &ID[1..])).1, "cgroup");
        assert_eq!(named(&format!("/docker/{}", ID.to_uppercase())).1, "cgroup");
    }
}
