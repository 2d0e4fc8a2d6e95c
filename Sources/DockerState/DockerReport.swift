/// What `fwassemble docker` reports (docs/docker.md). JSON keys are a contract.
public struct DockerReport: Sendable, Codable, Equatable {
    public var dataRoots: [DataRootReport]
    /// Problems met while looking for data-roots (unreadable daemon.json, a configured data-root
    /// that does not exist).
    public var problems: [String]

    public init(dataRoots: [DataRootReport] = [], problems: [String] = []) {
        self.dataRoots = dataRoots
        self.problems = problems
    }

    enum CodingKeys: String, CodingKey {
        case dataRoots = "data_roots", problems
    }
}

public struct DataRootReport: Sendable, Codable, Equatable {
    /// The real location in the namespace (a bind mount's source, not its target).
    public var path: String
    /// Every path the data-root was found through (configuration, defaults, binds).
    public var foundVia: [String]
    /// "overlay2", "containerd-snapshotter", "overlay" (Podman) or "unknown".
    public var driver: String
    /// "docker", "balena-engine", "containerd", "k3s" or "podman".
    public var engine: String
    public var images: [ImageInfo]
    public var containers: [ContainerInfo]
    public var volumes: [VolumeInfo]
    public var integrity: Integrity
    public var summary: Summary
    /// Where images and containers are kept: a `StoreKind`'s raw value, "overlay2" (Docker's graph
    /// driver), "containerd" (Docker 29's containerd image store, or containerd alone), "podman" or
    /// "unknown". A string, so the JSON and the facade's API stay as they were.
    public var store: String = "overlay2"
    /// The containerd root read for a containerd store ("/mnt/data/docker/containerd/daemon").
    public var containerdRoot: String? = nil
    /// A containerd store's namespaces, as `ctr -n NS images ls / snapshots ls / content ls` list them.
    public var namespaces: [NamespaceInfo]? = nil
    /// Podman's libpod state: which database the container states come from (absent for the other stores).
    public var libpodState: LibpodStateInfo? = nil

    enum CodingKeys: String, CodingKey {
        case path, foundVia = "found_via", driver, engine, images, containers, volumes, integrity, summary
        case store, containerdRoot = "containerd_root", namespaces, libpodState = "libpod_state"
    }
}

/// Where Podman's container states were read: `libpod/bolt_state.db` (BoltDB, Podman 4) or
/// `db.sql` (SQLite, Podman 5), and what a hot copy of db.sql left beside it.
public struct LibpodStateInfo: Sendable, Codable, Equatable {
    /// The file, relative to the store ("db.sql", "libpod/bolt_state.db"); nil when neither exists.
    public var file: String?
    /// "sqlite", "boltdb" or "none".
    public var backend: String
    /// db.sql-journal was hot (a write was under way when the disk was copied) and was rolled back
    /// in memory, as the device's SQLite would at its next open.
    public var journalRolledBack: Bool = false
    /// db.sql-wal was present and its committed frames were read.
    public var walRead: Bool = false

    public init(file: String?, backend: String, journalRolledBack: Bool = false, walRead: Bool = false) {
        (self.file, self.backend, self.journalRolledBack, self.walRead) = (file, backend, journalRolledBack, walRead)
    }

    enum CodingKeys: String, CodingKey {
        case file, backend, journalRolledBack = "journal_rolled_back", walRead = "wal_read"
    }
}

/// One containerd namespace ("moby" for Docker, "k8s.io" for k3s).
public struct NamespaceInfo: Sendable, Codable, Equatable {
    public var name: String
    public var images: [ImageRecord]
    public var snapshots: [SnapshotInfo]
    public var content: [ContentInfo]
    /// containerd container records (`v1/<ns>/containers/<id>`), ids.
    public var containers: [String]
    public var leases: [String]
}

/// An image record of meta.db (`ctr images ls`: REF, TYPE, DIGEST; `size` is the target's size).
public struct ImageRecord: Sendable, Codable, Equatable {
    public var name: String
    public var digest: String?
    public var mediaType: String?
    public var size: Int64?
    public var createdAt: String?
    public var updatedAt: String?

    enum CodingKeys: String, CodingKey {
        case name, digest, mediaType = "media_type", size, createdAt = "created_at", updatedAt = "updated_at"
    }
}

/// A snapshot of meta.db with its snapshotter's record (`ctr snapshots ls`: KEY, PARENT, KIND).
public struct SnapshotInfo: Sendable, Codable, Equatable {
    public var snapshotter: String
    public var key: String
    public var parent: String?
    /// "Active", "Committed", "View" (from the snapshotter's metadata.db), nil when it has no record.
    public var kind: String?
    /// The snapshotter's id: its directory is `snapshots/<id>/fs`.
    public var id: UInt64?
    public var createdAt: String?

    enum CodingKeys: String, CodingKey {
        case snapshotter, key, parent, kind, id, createdAt = "created_at"
    }
}

/// A content blob record (`ctr content ls`: DIGEST, SIZE).
public struct ContentInfo: Sendable, Codable, Equatable {
    public var digest: String
    public var size: Int64?
}

public struct ImageInfo: Sendable, Codable, Equatable {
    public var id: String
    public var tags: [String]
    public var created: String?
    public var layers: Int
    /// Sum of the layers' sizes from layerdb (bytes), nil when a layer's size is unknown.
    public var size: UInt64?
    public var cmd: [String]?
    public var entrypoint: [String]?
    public var diffIDs: [String]
    public var chainIDs: [String]
    /// containerd store: the image record's target (manifest or index) digest, its media type,
    /// the config digest and platform ("linux/arm64/v8") of the manifest used.
    public var targetDigest: String? = nil
    public var mediaType: String? = nil
    public var configDigest: String? = nil
    public var platform: String? = nil
    /// Docker's containerd image store: `RepoDigests` as Docker shows them (`web@sha256:<target>`),
    /// with `tags` its familiar tags (`DockerImageNames`); absent for the other stores.
    public var repoDigests: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case id, tags, created, layers, size, cmd, entrypoint, diffIDs = "diff_ids", chainIDs = "chain_ids"
        case targetDigest = "target_digest", mediaType = "media_type", configDigest = "config_digest", platform
        case repoDigests = "repo_digests"
    }
}

public struct ContainerInfo: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var image: String
    /// The image reference the container was created from (Config.Image), often a tag.
    public var imageTag: String?
    public var cmd: [String]?
    public var entrypoint: [String]?
    public var path: String?
    public var args: [String]?
    public var labels: [String: String]
    /// "running", "paused", "restarting", "dead", "exited" or "created".
    public var state: String
    public var running: Bool
    public var paused: Bool
    public var restarting: Bool
    public var dead: Bool
    public var exitCode: Int
    public var oomKilled: Bool
    public var startedAt: String?
    public var finishedAt: String?
    public var restartPolicy: String?
    public var restartCount: Int
    public var mountID: String?
    /// containerd store: the container's snapshot keys, top first (`<id>`, `<id>-init`, the
    /// image's chain ids).
    public var snapshotChain: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case snapshotChain = "snapshot_chain"
        case id, name, image, imageTag = "image_tag", cmd, entrypoint, path, args, labels, state, running, paused
        case restarting, dead, exitCode = "exit_code", oomKilled = "oom_killed", startedAt = "started_at"
        case finishedAt = "finished_at", restartPolicy = "restart_policy", restartCount = "restart_count"
        case mountID = "mount_id"
    }
}

public struct VolumeInfo: Sendable, Codable, Equatable {
    public var name: String
    /// Bytes of regular files below `_data`.
    public var size: UInt64
    public var files: Int
}

public struct Integrity: Sendable, Codable, Equatable {
    public var ok: Bool
    public var problems: [String]
    /// Whiteout devices (0:0 character devices) inside layer diffs.
    public var whiteouts: Int
    /// Opaque directories (trusted.overlay.opaque=y or user.overlay.opaque=y) inside layer diffs.
    public var opaqueDirectories: Int
    public var layers: Int

    enum CodingKeys: String, CodingKey {
        case ok, problems, whiteouts, opaqueDirectories = "opaque_directories", layers
    }
}

public struct Summary: Sendable, Codable, Equatable {
    public var images: Int
    public var containers: Int
    public var running: Int
    public var paused: Int
    public var restarting: Int
    public var dead: Int
    public var exitedNonzero: Int
    /// Image ids no container uses.
    public var imagesWithoutContainers: [String]

    enum CodingKeys: String, CodingKey {
        case images, containers, running, paused, restarting, dead, exitedNonzero = "exited_nonzero"
        case imagesWithoutContainers = "images_without_containers"
    }
}
