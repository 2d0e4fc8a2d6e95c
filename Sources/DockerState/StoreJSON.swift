import Foundation

// The JSON the stores read, as Codable structs: only the fields the inventory and the exports
// use. Decoding is tolerant the way the device's tools are: a field that is missing, null or of
// another type is absent (`Lenient`), an array element of another type is left out, and only a
// file that is not JSON, or not the object (array) it should be, is a problem.

/// A value decoded leniently: `value` is nil when the JSON holds something else there.
struct Lenient<T: Decodable>: Decodable {
    var value: T?

    init(from decoder: any Decoder) {
        value = try? decoder.singleValueContainer().decode(T.self)   // another type or null: absent, as `as? T` read it
    }
}

/// A JSON number as an integer: an integer, a number with a fraction truncated, or a boolean as
/// 0 or 1 (as `NSNumber.intValue` read them); nil for anything else or out of range.
struct LenientInteger<T: FixedWidthInteger & Decodable>: Decodable {
    var value: T?

    init(from decoder: any Decoder) {
        guard let c = try? decoder.singleValueContainer() else { return }   // not a single value: absent
        if let n = try? c.decode(T.self) {   // not an integer of this width: tried as a fraction below
            value = n
        } else if let d = try? c.decode(Double.self), d.isFinite {   // not a number: tried as a boolean below
            value = T(exactly: d.rounded(.towardZero))
        } else if let b = try? c.decode(Bool.self) {   // not a boolean either: absent
            value = b ? 1 : 0
        }
    }
}

/// A JSON boolean, or a number that is exactly 0 or 1 (as `as? Bool` read an NSNumber); nil
/// for anything else.
struct LenientBool: Decodable {
    var value: Bool?

    init(from decoder: any Decoder) {
        guard let c = try? decoder.singleValueContainer() else { return }   // not a single value: absent
        if let b = try? c.decode(Bool.self) {   // not a boolean: tried as a number below
            value = b
        } else if let d = try? c.decode(Double.self), d == 0 || d == 1 {   // not a number: absent
            value = d == 1
        }
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, nil when absent, null or of another type.
    func lenient<T: Decodable>(_ key: Key, as type: T.Type = T.self) -> T? {
        (try? decodeIfPresent(Lenient<T>.self, forKey: key))??.value   // cannot throw: Lenient never does
    }

    /// An integer at `key` (see `LenientInteger`).
    func integer<T: FixedWidthInteger & Decodable>(_ key: Key, as type: T.Type = T.self) -> T? {
        (try? decodeIfPresent(LenientInteger<T>.self, forKey: key))??.value   // cannot throw: LenientInteger never does
    }

    /// A boolean at `key` (see `LenientBool`).
    func flag(_ key: Key) -> Bool? {
        (try? decodeIfPresent(LenientBool.self, forKey: key))??.value   // cannot throw: LenientBool never does
    }

    /// An array at `key` with the elements of another type left out; nil when it is not an array.
    func lenientArray<T: Decodable>(_ key: Key, of type: T.Type = T.self) -> [T]? {
        lenient(key, as: [Lenient<T>].self)?.compactMap(\.value)
    }

    /// An object at `key` with the values of another type left out; nil when it is not an object.
    func lenientMap<T: Decodable>(_ key: Key, of type: T.Type = T.self) -> [String: T]? {
        lenient(key, as: [String: Lenient<T>].self)?.compactMapValues(\.value)
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
        var os: String?
        var architecture: String?
        var variant: String?

        enum CodingKeys: String, CodingKey { case os, architecture, variant }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            os = c.lenient(.os)
            architecture = c.lenient(.architecture)
            variant = c.lenient(.variant)
        }

        /// `os/architecture/variant`, the parts present.
        var display: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }
    }

    /// A content descriptor (index entries, a manifest's config and layers).
    struct Descriptor: Decodable {
        var mediaType: String?
        var digest: String?
        var size: Int64?
        var platform: Platform?

        enum CodingKeys: String, CodingKey { case mediaType, digest, size, platform }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            mediaType = c.lenient(.mediaType)
            digest = c.lenient(.digest)
            size = c.integer(.size)
            platform = c.lenient(.platform)
        }
    }

    /// An image index (or Docker manifest list): its `manifests` must be an array of objects.
    struct Index: Decodable {
        var manifests: [Descriptor]
    }

    /// An image manifest: `config` and `layers` (an array of objects, else no layers).
    struct Manifest: Decodable {
        var config: Descriptor?
        var layers: [Descriptor]

        enum CodingKeys: String, CodingKey { case config, layers }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            config = c.lenient(.config)
            layers = c.lenient(.layers) ?? []
        }
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
            var cmd: [String]?
            var entrypoint: [String]?

            enum CodingKeys: String, CodingKey { case cmd = "Cmd", entrypoint = "Entrypoint" }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                cmd = c.lenientArray(.cmd)
                entrypoint = c.lenientArray(.entrypoint)
            }
        }

        struct RootFS: Decodable {
            var diffIDs: [String]?

            enum CodingKeys: String, CodingKey { case diffIDs = "diff_ids" }

            init(from decoder: any Decoder) throws {
                diffIDs = try decoder.container(keyedBy: CodingKeys.self).lenientArray(.diffIDs)
            }
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
        var dataRoot: String?
        var graph: String?

        enum CodingKeys: String, CodingKey { case dataRoot = "data-root", graph }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dataRoot = c.lenient(.dataRoot)
            graph = c.lenient(.graph)
        }
    }

    /// `image/overlay2/repositories.json`: repository -> reference -> image id.
    struct Repositories: Decodable {
        var repositories: [String: [String: String]]?

        enum CodingKeys: String, CodingKey { case repositories = "Repositories" }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            repositories = c.lenientMap(.repositories, of: [String: Lenient<String>].self)?.mapValues { $0.compactMapValues(\.value) }
        }
    }

    /// `containers/<id>/config.v2.json`, the fields read.
    struct Container: Decodable {
        var id: String?
        var name: String?
        var image: String?
        var path: String?
        var args: [String]?
        var restartCount: Int?
        var driver: String?
        var config: Config?
        var state: State?

        struct Config: Decodable {
            var image: String?
            var cmd: [String]?
            var entrypoint: [String]?
            var labels: [String: String]?

            enum CodingKeys: String, CodingKey { case image = "Image", cmd = "Cmd", entrypoint = "Entrypoint", labels = "Labels" }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                image = c.lenient(.image)
                cmd = c.lenientArray(.cmd)
                entrypoint = c.lenientArray(.entrypoint)
                labels = c.lenientMap(.labels)
            }
        }

        struct State: Decodable {
            var running, paused, restarting, dead, oomKilled: Bool
            var exitCode: Int?
            var startedAt: String?
            var finishedAt: String?

            enum CodingKeys: String, CodingKey {
                case running = "Running", paused = "Paused", restarting = "Restarting", dead = "Dead", oomKilled = "OOMKilled"
                case exitCode = "ExitCode", startedAt = "StartedAt", finishedAt = "FinishedAt"
            }

            init() {
                (running, paused, restarting, dead, oomKilled) = (false, false, false, false, false)
            }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                running = c.flag(.running) ?? false
                paused = c.flag(.paused) ?? false
                restarting = c.flag(.restarting) ?? false
                dead = c.flag(.dead) ?? false
                oomKilled = c.flag(.oomKilled) ?? false
                exitCode = c.integer(.exitCode)
                startedAt = c.lenient(.startedAt)
                finishedAt = c.lenient(.finishedAt)
            }
        }

        enum CodingKeys: String, CodingKey {
            case id = "ID", name = "Name", image = "Image", path = "Path", args = "Args", restartCount = "RestartCount"
            case driver = "Driver", config = "Config", state = "State"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = c.lenient(.id)
            name = c.lenient(.name)
            image = c.lenient(.image)
            path = c.lenient(.path)
            args = c.lenientArray(.args)
            restartCount = c.integer(.restartCount)
            driver = c.lenient(.driver)
            config = c.lenient(.config)
            state = c.lenient(.state)
        }
    }

    /// `containers/<id>/hostconfig.json`: the restart policy's name.
    struct HostConfig: Decodable {
        var restartPolicy: String?

        enum CodingKeys: String, CodingKey { case restartPolicy = "RestartPolicy" }
        enum PolicyKeys: String, CodingKey { case name = "Name" }

        struct Policy: Decodable {
            var name: String?

            init(from decoder: any Decoder) throws {
                name = try decoder.container(keyedBy: PolicyKeys.self).lenient(.name)
            }
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
        var id: String?
        var parent: String?
        var diffDigest: String?
        var diffSize: UInt64?

        enum CodingKeys: String, CodingKey { case id, parent, diffDigest = "diff-digest", diffSize = "diff-size" }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = c.lenient(.id)
            parent = c.lenient(.parent)
            diffDigest = c.lenient(.diffDigest)
            diffSize = c.integer(.diffSize)
        }
    }

    /// A record of `overlay-images/images.json`.
    struct Image: Decodable {
        var id: String?
        var names: [String]
        var created: String?
        var digest: String?
        var layer: String?

        enum CodingKeys: String, CodingKey { case id, names, created, digest, layer }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = c.lenient(.id)
            names = c.lenientArray(.names) ?? []
            created = c.lenient(.created)
            digest = c.lenient(.digest)
            layer = c.lenient(.layer)
        }
    }

    /// A record of `overlay-containers/containers.json`; `metadata` is JSON in a string.
    struct Container: Decodable {
        var id: String?
        var names: [Lenient<String>]?
        var image: String?
        var layer: String?
        var metadata: String?

        enum CodingKeys: String, CodingKey { case id, names, image, layer, metadata }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = c.lenient(.id)
            names = c.lenient(.names)
            image = c.lenient(.image)
            layer = c.lenient(.layer)
            metadata = c.lenient(.metadata)
        }
    }

    /// A container's `metadata`: the image name it was created from.
    struct ContainerMetadata: Decodable {
        var imageName: String?

        enum CodingKeys: String, CodingKey { case imageName = "image-name" }

        init(from decoder: any Decoder) throws {
            imageName = try decoder.container(keyedBy: CodingKeys.self).lenient(.imageName)
        }
    }

    /// libpod's `ctr/<id>/config` in bolt_state.db, the fields read.
    struct ContainerConfig: Decodable {
        var args: [String]?
        var rootfsImageName: String?
        var labels: [String: String]?
        var restartPolicy: String?

        enum CodingKeys: String, CodingKey { case spec, rootfsImageName, labels, restartPolicy = "restart_policy" }
        enum SpecKeys: String, CodingKey { case process }
        enum ProcessKeys: String, CodingKey { case args }

        struct Process: Decodable {
            var args: [String]?

            init(from decoder: any Decoder) throws {
                args = try decoder.container(keyedBy: ProcessKeys.self).lenientArray(.args)
            }
        }

        struct Spec: Decodable {
            var process: Process?

            init(from decoder: any Decoder) throws {
                process = try decoder.container(keyedBy: SpecKeys.self).lenient(.process)
            }
        }

        init() {}

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            args = c.lenient(.spec, as: Spec.self)?.process?.args
            rootfsImageName = c.lenient(.rootfsImageName)
            labels = c.lenientMap(.labels)
            restartPolicy = c.lenient(.restartPolicy)
        }
    }

    /// libpod's `ctr/<id>/state`: `state` is libpod's ContainerStatus number.
    struct ContainerState: Decodable {
        var state: Int?
        var exitCode: Int?
        var oomKilled: Bool?
        var startedTime: String?
        var finishedTime: String?
        var restartCount: Int?

        enum CodingKeys: String, CodingKey { case state, exitCode, oomKilled, startedTime, finishedTime, restartCount }

        init() {}

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            state = c.integer(.state)
            exitCode = c.integer(.exitCode)
            oomKilled = c.flag(.oomKilled)
            startedTime = c.lenient(.startedTime)
            finishedTime = c.lenient(.finishedTime)
            restartCount = c.integer(.restartCount)
        }
    }
}
