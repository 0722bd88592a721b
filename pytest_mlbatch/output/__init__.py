"""What results become: the JSON and compliance JUnit reports, the terminal summary, GitHub output, the catalog."""
