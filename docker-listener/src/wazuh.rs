//! Everything docker-listener takes from Wazuh, in one place, each with where it comes from.

/// The queue socket, relative to the Wazuh home directory: `DEFAULTQUEUE` in
/// wazuh/src/headers/defs.h. Bound (AF_UNIX, SOCK_DGRAM) by wazuh-analysisd on a manager and
/// by wazuh-agentd on an agent.
pub const QUEUE_SOCKET_REL: &str = "queue/sockets/queue";

/// Wazuh's installation directory (the Python listener derives it from its own path).
pub const DEFAULT_WAZUH_HOME: &str = "/var/ossec";

/// Frame header: `LOCALFILE_MQ` ('1', wazuh/src/headers/mq_op.h), then the location string that
/// Wazuh's Python DockerListener.py uses (`msg_header = "1:Wazuh-Docker:"`). The analysis engine
/// decodes what follows with its JSON decoder and the 0560-docker_integration_rules.xml rules.
pub const FRAME_HEADER: &[u8] = b"1:Wazuh-Docker:";

/// What precedes a Docker event in a frame: DockerListener.py's
/// `{'integration': 'docker', 'docker': <event>}` (we write it without Python's spaces; the values
/// are identical and Wazuh's JSON decoder does not care about whitespace).
pub const DOCKER_EVENT_PREFIX: &[u8] = b"1:Wazuh-Docker:{\"integration\":\"docker\",\"docker\":";

/// What follows a Docker event in a frame.
pub const DOCKER_EVENT_SUFFIX: &[u8] = b"}";

/// The largest datagram Wazuh reads whole: analysisd calls `OS_RecvUnix(m_queue, OS_MAXSTR, ..)`,
/// which reads `OS_MAXSTR - 1` = 65535 bytes (OS_MAXSTR is 65536 in defs.h); the Python listener's
/// `MAX_EVENT_SIZE` (wodles/utils.py) is the same 65535. Longer datagrams are cut, which breaks
/// the JSON, so we never send one.
pub const MAX_DATAGRAM: usize = 65535;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_prefix_starts_with_the_frame_header() {
        assert!(DOCKER_EVENT_PREFIX.starts_with(FRAME_HEADER));
    }
}
