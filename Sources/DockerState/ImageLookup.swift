/// Docker's names for the images of its containerd image store (moby daemon/containerd
/// image_list.go, image_inspect.go, soft_delete.go), from the image records naming one target.
public enum DockerImageNames {
    /// The name dockerd gives the record keeping an image whose last name went: `moby-dangling@<target digest>`.
    public static let danglingPrefix = "moby-dangling@"

    /// `tags` and `repoDigests` as `docker images` / `docker inspect` show them:
    /// - `moby-dangling@<target>` (naming its own target) adds nothing: shown `<none>:<none>`;
    /// - a name that parses (`ImageReference`) without a digest adds its familiar string as a tag
    ///   (`docker.io/library/web:latest` is `web:latest`, `docker.io/realdev/base:1` is
    ///   `realdev/base:1`, `registry.example:5000/x/web:1` stays whole) and the RepoDigest
    ///   `<familiar name>@<target>`;
    /// - a name with a digest (`docker.io/example/web@sha256:...`, as a pull by digest stores it)
    ///   is a RepoDigest in its familiar form, not a tag;
    /// - a name that does not parse is a tag as it is.
    /// Both sorted, each once.
    public static func of(names: [String], target: String) -> (tags: [String], repoDigests: [String]) {
        var tags = Set<String>(), digests = Set<String>()
        for name in names where name != danglingPrefix + target {
            guard let ref = ImageReference(name) else {
                tags.insert(name)
                continue
            }
            if ref.digest != nil {
                digests.insert(ref.familiar)
            } else {
                tags.insert(ref.familiar)
                digests.insert(ref.with(digest: target).familiar)
            }
        }
        return (tags.sorted(), digests.sorted())
    }
}

/// Finding an image by what a user writes, the same way for `--expect`, `--export-image` and every
/// store (docs/docker.md "Image references"), as `docker inspect`/`docker run` find one:
/// 1. its id: `sha256:<64 hex>` or the 64 hex digits alone;
/// 2. one of its names: a tag or RepoDigest, compared fully qualified with `:latest` implied when
///    there is no tag (`web`, `web:latest`, `docker.io/library/web:latest` are one name); a name
///    with a digest also matches an image whose target digest (the manifest a RepoDigest names)
///    is that digest under one of its repositories; a tag that does not parse matches as written;
/// 3. a unique prefix of its id of at least 4 hex digits (`sha256:` optional), as dockerd's
///    `checkTruncatedID` allows; a prefix of several images is ambiguous, not a match;
/// 4. on Podman's store (`podmanShortNames`), a short name as libimage's `LookupImage` finds it:
///    `localhost/<name>` first, then any image with a name whose repository ends in `/<name>`
///    (`tool` is `localhost/tool:latest`, `web:1.0` is `docker.io/example/web:1.0`), the tag
///    (`latest` implied) or digest equal; several such images are ambiguous.
public enum ImageLookup {
    public enum Outcome: Equatable, Sendable {
        case found(ImageInfo)
        case notFound
        /// The ids of the images the reference matched.
        case ambiguous([String])
    }

    public static let minimumPrefix = 4

    public static func find(_ reference: String, in images: [ImageInfo], podmanShortNames: Bool = false) -> Outcome {
        let hex = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
        let isHex = !hex.isEmpty && hex.count <= 64 && hex.allSatisfy(\.isLowercaseHex)
        if isHex, hex.count == 64, let image = images.first(where: { $0.id == "sha256:" + hex }) { return .found(image) }
        let wanted = ImageReference(reference).map(key)
        let named = images.filter { image in
            image.tags.contains(reference) || image.repoDigests?.contains(reference) == true || wanted.map { keys(of: image).contains($0) } == true
        }
        if let outcome = unique(named) { return outcome }
        if isHex, hex.count >= minimumPrefix, let outcome = unique(images.filter({ $0.id.hasPrefix("sha256:" + hex) })) { return outcome }
        guard podmanShortNames else { return .notFound }
        return podmanShortName(reference, in: images) ?? .notFound
    }

    /// Step 4: `reference` as a Podman short name (written without a registry: its first
    /// component has no `.` or `:` and is not `localhost`), nil when it is not one or nothing matches.
    static func podmanShortName(_ reference: String, in images: [ImageInfo]) -> Outcome? {
        guard let ref = ImageReference(reference) else { return nil }
        var written = Substring(reference.split(separator: "@", maxSplits: 1).first ?? "")
        if let colon = written.lastIndex(of: ":"), !written[colon...].contains("/") { written = written[..<colon] }
        let first = written.split(separator: "/").first ?? ""
        guard !written.isEmpty, !first.contains("."), !first.contains(":"), first != "localhost" else { return nil }
        func matches(_ image: ImageInfo, localOnly: Bool) -> Bool {
            image.tags.contains { name in
                guard let n = ImageReference(name) else { return false }
                guard localOnly ? (n.domain == "localhost" && n.path == written) : (n.path == written || n.path.hasSuffix("/" + written)) else { return false }
                if let digest = ref.digest { return image.targetDigest == digest || image.repoDigests?.contains { $0.hasSuffix("@" + digest) } == true }
                return (n.tag ?? "latest") == (ref.tag ?? "latest")
            }
        }
        return unique(images.filter { matches($0, localOnly: true) }) ?? unique(images.filter { matches($0, localOnly: false) })
    }

    /// Whether `container` runs the image `reference` names: its `Config.Image` as written (or the
    /// same name fully qualified), or the image `find` resolves `reference` to is the container's
    /// (an image missing from `images` is still known by its id).
    public static func container(_ container: ContainerInfo, runs reference: String, images: [ImageInfo], podmanShortNames: Bool = false) -> Bool {
        if let written = container.imageTag {
            if written == reference { return true }
            if let a = ImageReference(written), let b = ImageReference(reference), key(a) == key(b) { return true }
        }
        var candidates = images
        if !container.image.isEmpty, !images.contains(where: { $0.id == container.image }) {
            candidates.append(ImageInfo(id: container.image, tags: [], created: nil, layers: 0, size: nil, cmd: nil, entrypoint: nil,
                                        diffIDs: [], chainIDs: []))
        }
        if case .found(let image) = find(reference, in: candidates, podmanShortNames: podmanShortNames) { return image.id == container.image }
        return false
    }

    /// The names an image answers to, each fully qualified: its tags with `:latest` implied, its
    /// RepoDigests, and `<repository>@<target digest>` for each of its repositories.
    static func keys(of image: ImageInfo) -> Set<String> {
        var result = Set<String>()
        for name in image.tags + (image.repoDigests ?? []) {
            guard let ref = ImageReference(name) else { continue }
            result.insert(key(ref))
            if let target = image.targetDigest { result.insert(key(ref.with(digest: target))) }
        }
        return result
    }

    /// A reference compared by name: with a digest, the repository and digest (a tag beside a
    /// digest is ignored, as dockerd resolves by digest); else the repository and tag, `latest` implied.
    static func key(_ reference: ImageReference) -> String {
        reference.digest.map { reference.with(digest: $0).description } ?? reference.withDefaultTag.description
    }

    private static func unique(_ images: [ImageInfo]) -> Outcome? {
        var ids: [String] = []
        for image in images where !ids.contains(image.id) { ids.append(image.id) }
        switch ids.count {
        case 0: return nil
        case 1: return images.first.map { .found($0) }
        default: return .ambiguous(ids)
        }
    }
}
