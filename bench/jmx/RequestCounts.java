// The broker's request counts by API since it started, one `name count` a line, read over JMX.
// Attach an agent to the running broker first (no restart):
//   jcmd $(cat .hive/kafka/kafka.pid) ManagementAgent.start jmxremote.port=9999 \
//        jmxremote.rmi.port=9999 jmxremote.authenticate=false jmxremote.ssl=false
// then: java bench/jmx/RequestCounts.java [port]   (before and after a run; the difference is the run's)
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class RequestCounts {
    public static void main(String[] args) throws Exception {
        String port = args.length > 0 ? args[0] : "9999";
        JMXServiceURL url = new JMXServiceURL("service:jmx:rmi:///jndi/rmi://127.0.0.1:" + port + "/jmxrmi");
        try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            TreeMap<String, Long> counts = new TreeMap<>();
            ObjectName pattern = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
            for (ObjectName name : server.queryNames(pattern, null)) {
                counts.merge(name.getKeyProperty("request"), (Long) server.getAttribute(name, "Count"), Long::sum);
            }
            counts.forEach((request, count) -> { if (count > 0) System.out.println(request + " " + count); });
        }
    }
}
