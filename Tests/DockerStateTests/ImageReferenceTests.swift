@testable import DockerState
import Testing

/// Docker's reference rules (github.com/distribution/reference normalize_test.go, regexp.go) and
/// the names and lookups built on them, in isolation.
@Suite("Image references, Docker's names and the one image matcher")
struct ImageReferenceTests {
    static let d1 = "sha256:" + String(repeating: "a1", count: 32)
    static let d2 = "sha256:" + String(repeating: "b2", count: 32)

    /// input, full reference, familiar string (nil: not a reference)
    @Test("Parsing, normalising and familiar forms", arguments: [
        ("alpine", "docker.io/library/alpine", "alpine"),
        ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"),
        ("docker.io/library/web:latest", "docker.io/library/web:latest", "web:latest"),
        ("docker.io/web", "docker.io/library/web", "web"),
        ("index.docker.io/realdev/base:1", "docker.io/realdev/base:1", "realdev/base:1"),
        ("docker.io/realdev/base:1", "docker.io/realdev/base:1", "realdev/base:1"),
        ("docker.io/library/x/y:1", "docker.io/library/x/y:1", "library/x/y:1"),
        ("registry.example:5000/x/web:1", "registry.example:5000/x/web:1", "registry.example:5000/x/web:1"),
        ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x"),
        ("localhost/x:dev", "localhost/x:dev", "localhost/x:dev"),
        ("ghcr.io/home-assistant/amd64-hassio-supervisor:2025.1", "ghcr.io/home-assistant/amd64-hassio-supervisor:2025.1",
         "ghcr.io/home-assistant/amd64-hassio-supervisor:2025.1"),
        ("Registry/x:1", "Registry/x:1", "Registry/x:1"),
        ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
        ("a__b-c---d/e.f_g:T_1.x-y", "docker.io/a__b-c---d/e.f_g:T_1.x-y", "a__b-c---d/e.f_g:T_1.x-y"),
        ("docker.io/example/web@\(d1)", "docker.io/example/web@\(d1)", "example/web@\(d1)"),
        ("web:1.0@\(d1)", "docker.io/library/web:1.0@\(d1)", "web:1.0@\(d1)"),
        ("moby-dangling@\(d1)", "docker.io/library/moby-dangling@\(d1)", "moby-dangling@\(d1)"),
    ])
    func parse(input: String, full: String, familiar: String) throws {
        let ref = try #require(ImageReference(input))
        #expect(ref.description == full)
        #expect(ref.familiar == familiar)
    }

    @Test("Not references: uppercase repositories, bad separators, tags, digests, a bare id", arguments: [
        "", "Alpine", "docker.io/Library/web", "a..b", "a___b", "-a", "a-", "a//b", "/a", "a/", "web:", "web:-x",
        "web:" + String(repeating: "t", count: 129), "web@sha256:abc", "web@sha256:" + String(repeating: "A", count: 64),
        "web@" + String(repeating: "a", count: 64), String(repeating: "ab", count: 32), "exa mple/web", "web:1:2",
        "registry.example:port/x", "-reg.example/x", "a__b.c/x", String(repeating: "a", count: 247) + "/b",
    ])
    func invalid(input: String) {
        #expect(ImageReference(input) == nil, "\(input)")
    }

    /// Docker's names for the containerd records of one target: (record names, tags, RepoDigests).
    @Test("Docker's names for containerd's records: familiar tags, RepoDigests, digest names, dangling", arguments: [
        (["docker.io/library/web:latest"], ["web:latest"], ["web@\(d1)"]),                                   // library prefix
        (["docker.io/realdev/base:1"], ["realdev/base:1"], ["realdev/base@\(d1)"]),                         // familiar name
        (["registry.example:5000/x/y:1"], ["registry.example:5000/x/y:1"], ["registry.example:5000/x/y@\(d1)"]),  // other registry
        (["docker.io/library/job@\(d1)"], [], ["job@\(d1)"]),                                               // digest-only
        (["moby-dangling@\(d1)"], [], []),                                                                  // dangling
        (["moby-dangling@\(d2)"], [], ["moby-dangling@\(d2)"]),   // the same name for another target: a digest name, as Docker parses it
        (["docker.io/example/web:1.0", "docker.io/example/web@\(d1)", "docker.io/library/web:latest", "moby-dangling@\(d1)"],
         ["example/web:1.0", "web:latest"], ["example/web@\(d1)", "web@\(d1)"]),
        (["docker.io/library/web"], ["web"], ["web@\(d1)"]),                                                // no tag: as inspect shows it
        (["Not A Name"], ["Not A Name"], []),                                                               // kept as it is
    ])
    func dockerNames(names: [String], tags: [String], digests: [String]) {
        let result = DockerImageNames.of(names: names, target: Self.d1)
        #expect(result.tags == tags)
        #expect(result.repoDigests == digests)
    }

    static func image(_ id: String, tags: [String], digests: [String]? = nil, target: String? = nil) -> ImageInfo {
        var info = ImageInfo(id: id, tags: tags, created: nil, layers: 0, size: nil, cmd: nil, entrypoint: nil, diffIDs: [], chainIDs: [])
        info.repoDigests = digests
        info.targetDigest = target
        return info
    }

    /// Images as each store lists them: overlay2 (repositories.json's familiar tags and digest
    /// references), containerd (Docker's names), Podman (full names, manifest digest as target).
    static let overlay2 = image("sha256:1111" + String(repeating: "0", count: 60), tags: ["alpine:3.19", "alpine@\(d2)"])
    static let overlay2b = image("sha256:1112" + String(repeating: "0", count: 60), tags: ["example/app:1.0", "UPPER:raw"])
    static let containerd = image(d1, tags: ["web:latest", "registry.example:5000/x/web:1"],
                                  digests: ["web@\(d1)", "registry.example:5000/x/web@\(d1)"], target: d1)
    static let podman = image("sha256:2222" + String(repeating: "0", count: 60), tags: ["docker.io/library/busybox:latest", "localhost/tool:2"],
                              target: d2)
    static let all = [overlay2, overlay2b, containerd, podman]

    /// reference, the id it finds (nil: none)
    static let lookups: [(String, String?)] = [
        // ids
        (overlay2.id, overlay2.id), (String(overlay2.id.dropFirst(7)), overlay2.id), (d1, d1),
        // prefixes: 4+ hex digits, unique
        ("sha256:2222", podman.id), ("2222", podman.id), (String(d1.dropFirst(7).prefix(12)), d1), ("111", nil),
        // names
        ("alpine:3.19", overlay2.id), ("docker.io/library/alpine:3.19", overlay2.id), ("alpine", nil),
        ("example/app:1.0", overlay2b.id), ("docker.io/example/app:1.0", overlay2b.id), ("UPPER:raw", overlay2b.id),
        ("web", d1), ("web:latest", d1), ("docker.io/library/web", d1), ("registry.example:5000/x/web:1", d1),
        ("registry.example:5000/x/web", nil), ("busybox", podman.id), ("docker.io/library/busybox", podman.id),
        ("localhost/tool:2", podman.id), ("tool:2", nil),
        // RepoDigests (overlay2: repositories.json's digest reference; containerd: name@target;
        // Podman: name@manifest digest)
        ("alpine@\(d2)", overlay2.id), ("docker.io/library/alpine:3.19@\(d2)", overlay2.id), ("web@\(d1)", d1),
        ("docker.io/library/web@\(d1)", d1), ("registry.example:5000/x/web@\(d1)", d1), ("busybox@\(d2)", podman.id),
        ("tool@\(d2)", nil), ("web@\(d2)", nil),
    ]

    @Test("One matcher: ids, unique prefixes, names with :latest implied, RepoDigests, on every store", arguments: lookups)
    func find(reference: String, id: String?) {
        switch ImageLookup.find(reference, in: Self.all) {
        case .found(let image): #expect(image.id == id, "\(reference)")
        case .notFound: #expect(id == nil, "\(reference) not found")
        case .ambiguous(let ids): Issue.record("\(reference) ambiguous: \(ids)")
        }
    }

    /// Podman's short names, on Podman's store only: `localhost/<name>` first, then a repository
    /// ending in `/<name>`; several such images are ambiguous; a name with a registry is never short.
    @Test("Podman short names (libimage's local lookup)")
    func podmanShortNames() {
        let web = Self.image("sha256:3333" + String(repeating: "0", count: 60), tags: ["docker.io/example/web:1.0"])
        let localWeb = Self.image("sha256:4444" + String(repeating: "0", count: 60), tags: ["localhost/web:1.0"])
        let quayWeb = Self.image("sha256:5555" + String(repeating: "0", count: 60), tags: ["quay.io/other/web:1.0"])
        let images = Self.all + [web]
        for (reference, id) in [("tool:2", Self.podman.id), ("tool@\(Self.d2)", Self.podman.id), ("web:1.0", web.id),
                                ("example/web:1.0", web.id), ("tool", nil), ("web:2.0", nil), ("eb:1.0", nil),
                                ("localhost/web:1.0", nil), ("quay.io/web:1.0", nil)] as [(String, String?)] {
            let found = ImageLookup.find(reference, in: images, podmanShortNames: true)
            #expect(found == (id.flatMap { i in images.first { $0.id == i } }.map { .found($0) } ?? .notFound), "\(reference)")
            if id != nil, !reference.hasPrefix("example/") {
                #expect(ImageLookup.find(reference, in: images) == .notFound, "\(reference) is not a Docker name")
            }
        }
        #expect(ImageLookup.find("web:1.0", in: [web, localWeb], podmanShortNames: true) == .found(localWeb))
        #expect(ImageLookup.find("web:1.0", in: [web, quayWeb], podmanShortNames: true) == .ambiguous([web.id, quayWeb.id]))
        // A name Docker's rules find is not searched again: `web` (docker.io/library/web:latest) stays the containerd image.
        #expect(ImageLookup.find("web", in: Self.all + [web], podmanShortNames: true) == .found(Self.containerd))
    }

    @Test("A prefix of several images is ambiguous, never the first")
    func ambiguous() {
        #expect(ImageLookup.find("sha256:1111", in: Self.all) == .found(Self.overlay2))
        #expect(ImageLookup.find("111", in: Self.all) == .notFound)   // under 4 hex digits
        #expect(ImageLookup.find("1111" + String(repeating: "0", count: 10), in: Self.all) == .found(Self.overlay2))
        let twins = [Self.overlay2, Self.overlay2b]
        #expect(ImageLookup.find("sha256:111", in: twins) == .notFound)
        #expect(ImageLookup.find("1111", in: twins) == .found(Self.overlay2))
        let clash = [Self.overlay2, Self.image("sha256:1111" + String(repeating: "f", count: 60), tags: [])]
        #expect(ImageLookup.find("1111", in: clash) == .ambiguous(clash.map(\.id)))
    }

    @Test("--expect: the container's Config.Image as written or fully qualified, or any reference to its image")
    func containerRuns() {
        var c = ContainerInfo(id: "c1", name: "web", image: Self.d1, imageTag: "web", cmd: nil, entrypoint: nil, path: nil, args: nil,
                              labels: [:], state: "running", running: true, paused: false, restarting: false, dead: false, exitCode: 0,
                              oomKilled: false, startedAt: nil, finishedAt: nil, restartPolicy: nil, restartCount: 0, mountID: nil)
        for yes in ["web", "docker.io/library/web:latest", "registry.example:5000/x/web:1", "web@\(Self.d1)", Self.d1,
                    String(Self.d1.dropFirst(7).prefix(4))] {
            #expect(ImageLookup.container(c, runs: yes, images: Self.all), "\(yes)")
        }
        for no in ["alpine:3.19", "busybox", "sha256:2222", "web:1"] {
            #expect(!ImageLookup.container(c, runs: no, images: Self.all), "\(no)")
        }
        // an image missing from the inventory is still known by its id, and by Config.Image
        c.image = "sha256:" + String(repeating: "9", count: 64)
        c.imageTag = "gone/app:1"
        for yes in ["9999", c.image, "gone/app:1", "docker.io/gone/app:1"] {
            #expect(ImageLookup.container(c, runs: yes, images: Self.all), "\(yes)")
        }
        #expect(!ImageLookup.container(c, runs: "web", images: Self.all))
    }

    /// ELF e_ident (class at 4, data at 5) and e_machine at 18, in the file's byte order.
    @Test("The device's architecture from an ELF header", arguments: [
        (2, 1, 0x3E, "amd64"), (1, 1, 0x03, "386"), (2, 1, 0xB7, "arm64"), (1, 1, 0x28, "arm"), (2, 1, 0xF3, "riscv64"),
        (2, 1, 0x15, "ppc64le"), (2, 2, 0x15, "ppc64"), (2, 2, 0x16, "s390x"), (1, 2, 0x08, "mips"), (2, 1, 0x08, "mips64le"),
        (1, 1, 0xF3, nil), (2, 1, 0x99, nil),
    ] as [(UInt8, UInt8, UInt16, String?)])
    func architecture(elfClass: UInt8, data: UInt8, machine: UInt16, name: String?) {
        var header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, elfClass, data, 1] + Array(repeating: 0, count: 9) + [2, 0]
        header += data == 1 ? [UInt8(machine & 0xFF), UInt8(machine >> 8)] : [UInt8(machine >> 8), UInt8(machine & 0xFF)]
        #expect(DeviceArchitecture.fromELF(header) == name)
        #expect(DeviceArchitecture.fromELF(Array(header.prefix(19))) == nil)
        #expect(DeviceArchitecture.fromELF([0x23, 0x21] + header.dropFirst(2)) == nil)   // "#!" script
    }
}
