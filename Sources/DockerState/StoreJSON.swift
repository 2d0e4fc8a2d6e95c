import Foundation

// The JSON the stores read, as Codable structs: only the fields the inventory and the exports
// use. Decoding is tolerant the way the device's tools are: a field that is missing, null or of
// another type is absent (the `Lenient…` property wrappers), an array element of another type is
// left out, and only a file that is not JSON, or not the object (array) it should be, is a problem.

/// A property wrapper decoded leniently: its `init(from:)` never throws, and `init()` is its value
/// when the key is missing or null.
protocol LenientField: Decodable {
    init()
}

extension KeyedDecodingContainer {
    /// A lenient field at `key`. Synthesized `Decodable` calls this overload (the more specific
    /// one) for every `@Lenient…` property, so a missing key is absent rather than an error.
    func decode<F: LenientField>(_ type: F.Type, forKey key: Key) -> F {
        (try? decodeIfPresent(F.self, forKey: key)) ?? F()   // cannot throw: a LenientField never does
    }

    /// The value at `key`, nil when absent, null or of another type.
    func lenient<T: Decodable>(_ key: Key, as type: T.Type = T.self) -> T? {
        decode(Lenient<T>.self, forKey: key).wrappedValue
    }
}

/// A value decoded leniently: nil when the JSON holds something else there.
@propertyWrapper
struct Lenient<T: Decodable>: LenientField {
    var wrappedValue: T?

    init() {}

    init(from decoder: any Decoder) {
        wrappedValue = try? decoder.singleValueContainer().decode(T.self)   // another type or null: absent, as `as? T` read it
    }
}

/// A JSON number as an integer: an integer, a number with a fraction truncated, or a boolean as
/// 0 or 1 (as `NSNumber.intValue` read them); nil for anything else or out of range.
@propertyWrapper
struct LenientInteger<T: FixedWidthInteger & Decodable>: LenientField {
    var wrappedValue: T?

    init() {}

    init(from decoder: any Decoder) {
        guard let c = try? decoder.singleValueContainer() else { return }   // not a single value: absent
        if let n = try? c.decode(T.self) {   // not an integer of this width: tried as a fraction below
            wrappedValue = n
        } else if let d = try? c.decode(Double.self), d.isFinite {   // not a number: tried as a boolean below
            wrappedValue = T(exactly: d.rounded(.towardZero))
        } else if let b = try? c.decode(Bool.self) {   // not a boolean either: absent
            wrappedValue = b ? 1 : 0
        }
    }
}

/// A JSON boolean, or a number that is exactly 0 or 1 (as `as? Bool` read an NSNumber); false
/// for anything else.
@propertyWrapper
struct LenientBool: LenientField {
    var wrappedValue = false

    init() {}

    init(from decoder: any Decoder) {
        guard let c = try? decoder.singleValueContainer() else { return }   // not a single value: absent
        if let b = try? c.decode(Bool.self) {   // not a boolean: tried as a number below
            wrappedValue = b
        } else if let d = try? c.decode(Double.self), d == 0 || d == 1 {   // not a number: absent
            wrappedValue = d == 1
        }
    }
}

/// An array with the elements of another type left out; nil when it is not an array.
@propertyWrapper
struct LenientArray<T: Decodable>: LenientField {
    var wrappedValue: [T]?

    init() {}

    init(from decoder: any Decoder) {
        wrappedValue = Lenient<[Lenient<T>]>(from: decoder).wrappedValue?.compactMap(\.wrappedValue)
    }
}

/// An object with the values of another type left out; nil when it is not an object.
@propertyWrapper
struct LenientMap<T: Decodable>: LenientField {
    var wrappedValue: [String: T]?

    init() {}

    init(from decoder: any Decoder) {
        wrappedValue = Lenient<[String: Lenient<T>]>(from: decoder).wrappedValue?.compactMapValues(\.wrappedValue)
    }
}

/// Decoding a file's bytes into one of these types, telling malformed JSON from JSON of another kind.
enum JSONContent {
    enum Failure: Error {
        /// Not JSON (truncated, malformed, or a bare scalar, which JSONSerialization refused too).
        case invalid
        /// JSON, but not the object or array the type is.
        case wrongKind
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) -> Result<T, Failure> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(bytes)))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            // A top-level scalar is a fragment, which the readers never accepted as JSON.
            let first = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
            return .failure(first == UInt8(ascii: "{") || first == UInt8(ascii: "[") ? .wrongKind : .invalid)
        } catch {
            return .failure(.invalid)
        }
    }
}

// MARK: OCI (and Docker's image configs, which have the same shape)

enum OCI {
    struct Platform: Decodable {
        @Lenient var os: String?
        @Lenient var architecture: String?
        @Lenient var variant: String?

        /// `os/architecture/variant`, the parts present.
        var display: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }
    }

    /// A content descriptor (index entries, a manifest's config and layers).
    struct Descriptor: Decodable {
        @Lenient var mediaType: String?
        @Lenient var digest: String?
        @LenientInteger var size: Int64?
        @Lenient var platform: Platform?
    }

    /// An image index (or Docker manifest list): its `manifests` must be an array of objects.
    struct Index: Decodable {
        var manifests: [Descriptor]
    }

    /// An image manifest: `config` and `layers` (nil unless an array of objects).
    struct Manifest: Decodable {
        @Lenient var config: Descriptor?
        @Lenient var layers: [Descriptor]?
    }

    /// What an image record's target names: an index, or a manifest.
    enum Target: Decodable {
        case index(Index)
        case manifest(Manifest)

        init(from decoder: any Decoder) throws {
            if let index = try? Index(from: decoder) {   // no `manifests` array of objects: a manifest
                self = .index(index)
            } else {
                self = .manifest(try Manifest(from: decoder))
            }
        }
    }

    /// An image configuration (OCI, Docker's `imagedb/content/sha256/<id>`, Podman's big data).
    struct ImageConfig: Decodable {
        var created: String?
        var platform: Platform
        var config: Config?
        var diffIDs: [String]

        struct Config: Decodable {
            @LenientArray var cmd: [String]?
            @LenientArray var entrypoint: [String]?

            enum CodingKeys: String, CodingKey { case cmd = "Cmd", entrypoint = "Entrypoint" }
        }

        struct RootFS: Decodable {
            @LenientArray var diffIDs: [String]?

            enum CodingKeys: String, CodingKey { case diffIDs = "diff_ids" }
        }

        enum CodingKeys: String, CodingKey { case created, config, rootfs }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            created = c.lenient(.created)
            platform = try Platform(from: decoder)
            config = c.lenient(.config)
            diffIDs = c.lenient(.rootfs, as: RootFS.self)?.diffIDs ?? []
        }
    }
}

// MARK: Docker

enum DockerJSON {
    /// `daemon.json`: the data-root settings.
    struct DaemonConfig: Decodable {
        @Lenient var dataRoot: String?
        @Lenient var graph: String?

        enum CodingKeys: String, CodingKey { case dataRoot = "data-root", graph }
    }

    /// `image/overlay2/repositories.json`: repository -> reference -> image id.
    struct Repositories: Decodable {
        var repositories: [String: [String: String]]?

        enum CodingKeys: String, CodingKey { case repositories = "Repositories" }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            repositories = c.decode(LenientMap<[String: Lenient<String>]>.self, forKey: .repositories).wrappedValue?
                .mapValues { $0.compactMapValues(\.wrappedValue) }
        }
    }

    /// `containers/<id>/config.v2.json`, the fields read.
    struct Container: Decodable {
        @Lenient var id: String?
        @Lenient var name: String?
        @Lenient var image: String?
        @Lenient var path: String?
        @LenientArray var args: [String]?
        @LenientInteger var restartCount: Int?
        @Lenient var driver: String?
        @Lenient var config: Config?
        @Lenient var state: State?

        struct Config: Decodable {
            @Lenient var image: String?
            @LenientArray var cmd: [String]?
            @LenientArray var entrypoint: [String]?
            @LenientMap var labels: [String: String]?

            enum CodingKeys: String, CodingKey { case image = "Image", cmd = "Cmd", entrypoint = "Entrypoint", labels = "Labels" }
        }

        struct State: Decodable {
            @LenientBool var running: Bool
            @LenientBool var paused: Bool
            @LenientBool var restarting: Bool
            @LenientBool var dead: Bool
            @LenientBool var oomKilled: Bool
            @LenientInteger var exitCode: Int?
            @Lenient var startedAt: String?
            @Lenient var finishedAt: String?

            enum CodingKeys: String, CodingKey {
                case running = "Running", paused = "Paused", restarting = "Restarting", dead = "Dead", oomKilled = "OOMKilled"
                case exitCode = "ExitCode", startedAt = "StartedAt", finishedAt = "FinishedAt"
            }

            init() {}
        }

        enum CodingKeys: String, CodingKey {
            case id = "ID", name = "Name", image = "Image", path = "Path", args = "Args", restartCount = "RestartCount"
            case driver = "Driver", config = "Config", state = "State"
        }
    }

    /// `containers/<id>/hostconfig.json`: the restart policy's name.
    struct HostConfig: Decodable {
        var restartPolicy: String?

        enum CodingKeys: String, CodingKey { case restartPolicy = "RestartPolicy" }

        struct Policy: Decodable {
            @Lenient var name: String?

            enum CodingKeys: String, CodingKey { case name = "Name" }
        }

        init(from decoder: any Decoder) throws {
            restartPolicy = try decoder.container(keyedBy: CodingKeys.self).lenient(.restartPolicy, as: Policy.self)?.name
        }
    }
}

// MARK: Podman (containers/storage and libpod)

enum PodmanJSON {
    /// A record of `overlay-layers/layers.json`.
    struct Layer: Decodable {
        @Lenient var id: String?
        @Lenient var parent: String?
        @Lenient var diffDigest: String?
        @LenientInteger var diffSize: UInt64?

        enum CodingKeys: String, CodingKey { case id, parent, diffDigest = "diff-digest", diffSize = "diff-size" }
    }

    /// A record of `overlay-images/images.json`.
    struct Image: Decodable {
        @Lenient var id: String?
        @LenientArray var names: [String]?
        @Lenient var created: String?
        @Lenient var digest: String?
        @Lenient var layer: String?
    }

    /// A record of `overlay-containers/containers.json`; `metadata` is JSON in a string.
    struct Container: Decodable {
        @Lenient var id: String?
        @Lenient var names: [Lenient<String>]?
        @Lenient var image: String?
        @Lenient var layer: String?
        @Lenient var metadata: String?
    }

    /// A container's `metadata`: the image name it was created from.
    struct ContainerMetadata: Decodable {
        @Lenient var imageName: String?

        enum CodingKeys: String, CodingKey { case imageName = "image-name" }
    }

    /// libpod's `ctr/<id>/config` in bolt_state.db, the fields read.
    struct ContainerConfig: Decodable {
        @Lenient private var spec: Spec?
        @Lenient var rootfsImageName: String?
        @LenientMap var labels: [String: String]?
        @Lenient var restartPolicy: String?

        enum CodingKeys: String, CodingKey { case spec, rootfsImageName, labels, restartPolicy = "restart_policy" }

        struct Spec: Decodable {
            @Lenient var process: Process?
        }

        struct Process: Decodable {
            @LenientArray var args: [String]?
        }

        /// The command line, `spec.process.args`.
        var args: [String]? { spec?.process?.args }

        init() {}
    }

    /// libpod's `ctr/<id>/state`: `state` is libpod's ContainerStatus number.
    struct ContainerState: Decodable {
        @LenientInteger var state: Int?
        @LenientInteger var exitCode: Int?
        @LenientBool var oomKilled: Bool
        @Lenient var startedTime: String?
        @Lenient var finishedTime: String?
        @LenientInteger var restartCount: Int?

        init() {}
    }
}
